package baseline

import "github.com/weir-run/weir/bench/nexmark"

func init() { Queries["q3"] = q3 }

type q3Person struct{ name, city, state string }

// q3: the incremental join of persons from OR, ID or CA with the auctions
// of category 10 they sell, in whichever order the two come.
func q3(g *nexmark.Generator, n int64) nexmark.Checksum {
	var c nexmark.Checksum
	var buf []byte
	persons := map[int64]q3Person{}
	waiting := map[int64][]int64{} // seller -> auctions that came before the seller
	for i := range n {
		e := g.Event(i)
		switch e.Kind {
		case nexmark.KindPerson:
			p := e.Person
			if p.State != "OR" && p.State != "ID" && p.State != "CA" {
				continue
			}
			persons[p.ID] = q3Person{p.Name, p.City, p.State}
			if ids, ok := waiting[p.ID]; ok {
				for _, id := range ids {
					buf = nexmark.Add(&c, buf, nexmark.Q3Out{Name: p.Name, City: p.City, State: p.State, Auction: id})
				}
				delete(waiting, p.ID)
			}
		case nexmark.KindAuction:
			a := e.Auction
			if a.Category != 10 {
				continue
			}
			if p, ok := persons[a.Seller]; ok {
				buf = nexmark.Add(&c, buf, nexmark.Q3Out{Name: p.name, City: p.city, State: p.state, Auction: a.ID})
			} else {
				waiting[a.Seller] = append(waiting[a.Seller], a.ID)
			}
		}
	}
	return c
}
