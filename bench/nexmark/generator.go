package nexmark

import (
	"github.com/weir-run/weir/internal/uvarintframe"
	"math"
	"math/bits"
	"math/rand/v2"
	"strconv"
	"sync"
)

// This file ports the standard Nexmark generator: Apache Beam's
// org.apache.beam.sdk.nexmark.sources.generator (GeneratorConfig and
// model/{Person,Auction,Bid,Strings,Price}Generator), with the bid channel
// and URL of Flink's nexmark (com.github.nexmark.flink.generator). Where it
// departs from them it says so in a comment marked "Deviation".

// Constants of Beam's GeneratorConfig and model generators.
const (
	firstPersonID   = 1000 // GeneratorConfig.FIRST_PERSON_ID
	firstAuctionID  = 1000 // GeneratorConfig.FIRST_AUCTION_ID
	firstCategoryID = 10   // GeneratorConfig.FIRST_CATEGORY_ID
	numCategories   = 5    // AuctionGenerator.NUM_CATEGORIES

	// Proportions of persons, auctions and bids in every block of
	// proportionDenominator events: event i is a person if i%50 < 1, an
	// auction if i%50 < 4, else a bid.
	personProportion      = 1
	auctionProportion     = 3
	bidProportion         = 46
	proportionDenominator = personProportion + auctionProportion + bidProportion

	// Hot sellers, bidders and auctions are the first (bidders: the second)
	// of the batch of the last hotBatch persons/auctions, as Beam's
	// HOT_SELLER_RATIO, HOT_BIDDER_RATIO and HOT_AUCTION_RATIO (all 100).
	hotBatch = 100

	minStringLength = 3 // StringsGenerator.MIN_STRING_LENGTH

	// Flink's BidGenerator: half the bids come from one of the hot channels,
	// the rest from one of channelsNumber others.
	hotChannelsRatio = 2
	channelsNumber   = 10_000
)

// Config is the generator's model. The zero value of a field means its
// default (DefaultConfig), except Seed: 0 is a seed like any other.
type Config struct {
	Seed            uint64
	EventsPerSecond float64 // event-time rate: event i is at BaseTime + i/EventsPerSecond
	BaseTime        int64   // unix ms of event 0

	// Persons recently created who may sell or bid (Beam numActivePeople).
	NumActivePeople int64
	// Auctions recently created that a non-hot bid may go to (Beam
	// numInFlightAuctions); it also sets the average auction length.
	NumInFlightAuctions int64
	// 1 - 1/HotAuctionRatio of the bids go to the hot auction; likewise
	// auctions to the hot seller and bids from the hot bidder. 1 means none.
	HotAuctionRatio int
	HotSellersRatio int
	HotBiddersRatio int
	// Average sizes in bytes of the events' EventCodec bodies (everything but
	// Emit); each record's Extra pads it to about this size.
	AvgPersonByteSize  int
	AvgAuctionByteSize int
	AvgBidByteSize     int
}

// DefaultConfig is Beam's and Flink's Nexmark default model.
func DefaultConfig() Config {
	return Config{
		Seed:                1,
		EventsPerSecond:     10_000,
		BaseTime:            1_436_918_400_000,
		NumActivePeople:     1000,
		NumInFlightAuctions: 100,
		HotAuctionRatio:     2,
		HotSellersRatio:     4,
		HotBiddersRatio:     4,
		AvgPersonByteSize:   200,
		AvgAuctionByteSize:  500,
		AvgBidByteSize:      100,
	}
}

// Generator makes event i as a pure function of (Config, i), so any subset
// of indices can be generated anywhere, in any order, in parallel. It is
// immutable after NewGenerator and safe for concurrent use.
type Generator struct {
	cfg      Config
	seedMix  uint64 // the seed, hashed once
	pad      string // random lowercase letters; every Extra is a substring
	auctionN int64  // events until NumInFlightAuctions more auctions exist
}

// orDefault sets a zero field to its default.
func orDefault[T comparable](v *T, d T) {
	var zero T
	if *v == zero {
		*v = d
	}
}

// NewGenerator makes a generator of cfg, a zero field meaning its default
// (but a zero Seed is a seed).
func NewGenerator(cfg Config) *Generator {
	d := DefaultConfig()
	orDefault(&cfg.EventsPerSecond, d.EventsPerSecond)
	orDefault(&cfg.BaseTime, d.BaseTime)
	orDefault(&cfg.NumActivePeople, d.NumActivePeople)
	orDefault(&cfg.NumInFlightAuctions, d.NumInFlightAuctions)
	orDefault(&cfg.HotAuctionRatio, d.HotAuctionRatio)
	orDefault(&cfg.HotSellersRatio, d.HotSellersRatio)
	orDefault(&cfg.HotBiddersRatio, d.HotBiddersRatio)
	orDefault(&cfg.AvgPersonByteSize, d.AvgPersonByteSize)
	orDefault(&cfg.AvgAuctionByteSize, d.AvgAuctionByteSize)
	orDefault(&cfg.AvgBidByteSize, d.AvgBidByteSize)
	tables.once.Do(buildTables)
	g := &Generator{
		cfg:     cfg,
		seedMix: mix64(cfg.Seed + golden),
		pad:     tables.pad,
		// GeneratorConfig: numInFlightAuctions * PROPORTION_DENOMINATOR / AUCTION_PROPORTION.
		auctionN: cfg.NumInFlightAuctions * proportionDenominator / auctionProportion,
	}
	// An Extra is at most 1.2 times its average size; it must fit in the pad
	// with room to choose its offset.
	if longest := 2 * max(cfg.AvgPersonByteSize, cfg.AvgAuctionByteSize, cfg.AvgBidByteSize); longest > len(g.pad)/4 {
		r := rng{s: mix64(0x5eed ^ uint64(longest))}
		g.pad = string(appendLetters(nil, &r, 4*longest))
	}
	return g
}

// timestamp is event i's event time (unix ms): BaseTime + floor(i*1000/EventsPerSecond),
// non-decreasing in i.
func (g *Generator) timestamp(i int64) int64 {
	return g.cfg.BaseTime + int64(float64(i)*1000/g.cfg.EventsPerSecond)
}

// Event returns event i (i >= 0). Beam seeds a java.util.Random with the
// event id for every event; this seeds a splitmix64 stream with (Seed, i).
// A bid allocates only its *Bid.
func (g *Generator) Event(i int64) Event {
	r := rng{s: mix64(g.seedMix ^ uint64(i))}
	ts := g.timestamp(i)
	switch rem := i % proportionDenominator; {
	case rem < personProportion:
		return Event{Kind: KindPerson, Person: g.person(i, &r, ts)}
	case rem < personProportion+auctionProportion:
		return Event{Kind: KindAuction, Auction: g.auction(i, &r, ts)}
	default:
		return Event{Kind: KindBid, Bid: g.bid(i, &r, ts)}
	}
}

// lastPersonID is the id of the newest person at event i: event i's own id
// if it is a person. (Beam PersonGenerator.lastBase0PersonId + FIRST_PERSON_ID.)
func lastPersonID(i int64) int64 { return lastBase0PersonID(i) + firstPersonID }

// lastAuctionID is the id of the newest auction at event i: event i's own id
// if it is an auction; firstAuctionID-1 before the first auction.
// (Beam AuctionGenerator.lastBase0AuctionId + FIRST_AUCTION_ID.)
func lastAuctionID(i int64) int64 { return lastBase0AuctionID(i) + firstAuctionID }

func lastBase0PersonID(i int64) int64 {
	epoch, offset := i/proportionDenominator, i%proportionDenominator
	if offset >= personProportion {
		offset = personProportion - 1
	}
	return epoch*personProportion + offset
}

func lastBase0AuctionID(i int64) int64 {
	epoch, offset := i/proportionDenominator, i%proportionDenominator
	switch {
	case offset < personProportion: // the last auction of the previous epoch
		epoch--
		offset = auctionProportion - 1
	case offset >= personProportion+auctionProportion: // the last of this epoch
		offset = auctionProportion - 1
	default:
		offset -= personProportion
	}
	return epoch*auctionProportion + offset
}

// nextBase0PersonID is Beam's PersonGenerator.nextBase0PersonId: one of the
// last NumActivePeople persons.
//
// Deviation: Beam adds PERSON_ID_LEAD (10) ids beyond the newest person, so
// a seller or bidder may not exist yet; here every id refers to a person
// generated at an index <= the referring event's.
func (g *Generator) nextBase0PersonID(i int64, r *rng) int64 {
	numPeople := lastBase0PersonID(i) + 1
	active := min(numPeople, g.cfg.NumActivePeople)
	return numPeople - active + r.int64n(active)
}

// nextBase0AuctionID is Beam's AuctionGenerator.nextBase0AuctionId: one of
// the last NumInFlightAuctions+1 auctions.
//
// Deviation: without Beam's AUCTION_ID_LEAD (10) ids beyond the newest
// auction, as for persons.
func (g *Generator) nextBase0AuctionID(i int64, r *rng) int64 {
	maxAuction := lastBase0AuctionID(i)
	minAuction := max(maxAuction-g.cfg.NumInFlightAuctions, 0)
	return minAuction + r.int64n(maxAuction-minAuction+1)
}

func (g *Generator) person(i int64, r *rng, ts int64) *Person {
	p := &Person{ID: lastBase0PersonID(i) + firstPersonID, DateTime: ts}
	p.Name = tables.names[r.intn(len(firstNames))*len(lastNames)+r.intn(len(lastNames))]
	// Email (nextString(7)@nextString(5).com) and credit card ("%04d %04d
	// %04d %04d") share one allocation.
	var buf [64]byte
	b := appendNextString(buf[:0], r, 7)
	b = append(b, '@')
	b = appendNextString(b, r, 5)
	b = append(b, ".com"...)
	emailLen := len(b)
	for k := range 4 {
		if k > 0 {
			b = append(b, ' ')
		}
		n := r.intn(10000)
		b = append(b, byte('0'+n/1000), byte('0'+n/100%10), byte('0'+n/10%10), byte('0'+n%10))
	}
	s := string(b)
	p.EmailAddress, p.CreditCard = s[:emailLen], s[emailLen:]
	p.City = usCities[r.intn(len(usCities))]
	p.State = usStates[r.intn(len(usStates))]
	size := 1 + varintLen(p.ID) + strLen(p.Name) + strLen(p.EmailAddress) + strLen(p.CreditCard) +
		strLen(p.City) + strLen(p.State) + varintLen(p.DateTime)
	p.Extra = g.nextExtra(r, size, g.cfg.AvgPersonByteSize)
	return p
}

func (g *Generator) auction(i int64, r *rng, ts int64) *Auction {
	a := &Auction{ID: lastBase0AuctionID(i) + firstAuctionID, DateTime: ts}
	// Here P(auction will be for a hot seller) = 1 - 1/hotSellersRatio.
	if r.intn(g.cfg.HotSellersRatio) > 0 {
		a.Seller = lastBase0PersonID(i) / hotBatch * hotBatch
	} else {
		a.Seller = g.nextBase0PersonID(i, r)
	}
	a.Seller += firstPersonID
	a.Category = firstCategoryID + int64(r.intn(numCategories))
	a.InitialBid = nextPrice(r)
	a.Expires = ts + g.nextAuctionLengthMs(i, r, ts)
	var buf [128]byte
	b := appendNextString(buf[:0], r, 20)
	nameLen := len(b)
	b = appendNextString(b, r, 100)
	s := string(b)
	a.ItemName, a.Description = s[:nameLen], s[nameLen:]
	a.Reserve = a.InitialBid + nextPrice(r)
	size := 1 + varintLen(a.ID) + strLen(a.ItemName) + strLen(a.Description) + varintLen(a.InitialBid) +
		varintLen(a.Reserve) + varintLen(a.DateTime) + varintLen(a.Expires) + varintLen(a.Seller) + varintLen(a.Category)
	a.Extra = g.nextExtra(r, size, g.cfg.AvgAuctionByteSize)
	return a
}

// nextAuctionLengthMs is Beam's: uniform in [1, 2*horizon] where horizon is
// the event time until NumInFlightAuctions more auctions will have been
// created, so that about that many are in flight at any time. (Beam's
// outOfOrderGroupSize is 1 and its rate shape constant, so its
// currentEventNumber is i.)
func (g *Generator) nextAuctionLengthMs(i int64, r *rng, ts int64) int64 {
	horizon := g.timestamp(i+g.auctionN) - ts
	return 1 + r.int64n(max(horizon*2, 1))
}

func (g *Generator) bid(i int64, r *rng, ts int64) *Bid {
	x := &Bid{DateTime: ts}
	// Here P(bid will be for a hot auction) = 1 - 1/hotAuctionRatio.
	if r.intn(g.cfg.HotAuctionRatio) > 0 {
		x.Auction = lastBase0AuctionID(i) / hotBatch * hotBatch
	} else {
		x.Auction = g.nextBase0AuctionID(i, r)
	}
	x.Auction += firstAuctionID
	// Here P(bid will be by a hot bidder) = 1 - 1/hotBiddersRatio.
	if r.intn(g.cfg.HotBiddersRatio) > 0 {
		// Beam: the second person of the batch of the last 100 persons, so
		// that hot bidders and hot sellers differ.
		//
		// Deviation: when the newest person opens a new batch (its base-0 id
		// is a multiple of 100), Beam's second person of that batch does
		// not exist yet; this takes the previous batch's.
		last := lastBase0PersonID(i)
		if last > 0 {
			x.Bidder = (last-1)/hotBatch*hotBatch + 1
		}
	} else {
		x.Bidder = g.nextBase0PersonID(i, r)
	}
	// Deviation: Flink's BidGenerator adds FIRST_PERSON_ID twice; this adds
	// it once, as Beam.
	x.Bidder += firstPersonID
	x.Price = nextPrice(r)
	var c *channelURL
	if r.intn(hotChannelsRatio) > 0 {
		c = &tables.hot[r.intn(len(tables.hot))]
	} else {
		c = &tables.cold[r.intn(channelsNumber)]
	}
	x.Channel, x.URL = c.channel, c.url
	size := 1 + varintLen(x.Auction) + varintLen(x.Bidder) + varintLen(x.Price) +
		strLen(x.Channel) + strLen(x.URL) + varintLen(x.DateTime)
	x.Extra = g.nextExtra(r, size, g.cfg.AvgBidByteSize)
	return x
}

// nextExtra is Beam's StringsGenerator.nextExtra: a string such that
// currentSize plus its (encoded) length is on average desiredAverageSize,
// uniform within ±20% of the difference.
//
// Deviation: Beam's currentSize is a rough estimate of the Java object
// (8 bytes per number); here it is the exact EventCodec body size so far,
// so that the encoded events have the configured average sizes. And the
// string is not generated for the event but is a random substring of one
// precomputed random string, which costs no allocation.
func (g *Generator) nextExtra(r *rng, currentSize, desiredAverageSize int) string {
	desired := desiredAverageSize - currentSize
	desired -= uvarintLen(uint64(max(desired, 0))) // the Extra's length prefix
	if desired <= 0 {
		return ""
	}
	delta := int(math.Round(float64(desired) * 0.2))
	n := desired - delta
	if delta != 0 {
		n += r.intn(2 * delta)
	}
	off := r.intn(len(g.pad) - n + 1)
	return g.pad[off : off+n]
}

// nextPrice is Beam's PriceGenerator.nextPrice: log-uniform in [100, 10^8]
// cents, round(10^(6u) * 100) for u uniform in [0, 1).
func nextPrice(r *rng) int64 {
	return int64(pow10(r.float64()*6)*100 + 0.5)
}

// pow10 is 10^x for x in [0, 6) to a relative error below 1e-13, in a few
// ns rather than math.Pow's (or math.Exp's) tens: 10^x = 2^y with
// y = x log2(10) = n + (j + f)/1024, 2^(j/1024) from a table and 2^(f/1024)
// by its Taylor series (f/1024 < 1/1024 so three terms suffice).
func pow10(x float64) float64 {
	y := x * math.Log2E * math.Ln10 * 1024
	k := int(y)
	t := (y - float64(k)) * (math.Ln2 / 1024)
	scale := math.Float64frombits(uint64(1023+k>>10) << 52) // 2^n, n < 20
	return exp2Table[k&1023] * (1 + t*(1+t*(0.5+t*(1.0/6)))) * scale
}

var exp2Table = func() (t [1024]float64) {
	for j := range t {
		t[j] = math.Exp2(float64(j) / 1024)
	}
	return t
}()

// appendNextString is Beam's StringsGenerator.nextString: 3 to maxLength-1
// characters, each a space with probability 1/13 else a random lowercase
// letter, trimmed of spaces at both ends.
func appendNextString(b []byte, r *rng, maxLength int) []byte {
	start := len(b)
	for n := minStringLength + r.intn(maxLength-minStringLength); n > 0; n-- {
		// One draw per character: its high half decides space or letter
		// (1 in 13), its low half the letter (biases below 1e-8).
		v := r.Uint64()
		if (v>>32)*13>>32 == 0 {
			b = append(b, ' ')
		} else {
			b = append(b, byte('a'+(v&0xffffffff)*26>>32))
		}
	}
	lead := start
	for lead < len(b) && b[lead] == ' ' {
		lead++
	}
	if lead > start {
		b = append(b[:start], b[lead:]...)
	}
	for len(b) > start && b[len(b)-1] == ' ' {
		b = b[:len(b)-1]
	}
	return b
}

// appendLetters is Beam's StringsGenerator.nextExactString: n random
// lowercase letters.
func appendLetters(b []byte, r *rng, n int) []byte {
	for ; n > 0; n-- {
		b = append(b, byte('a'+r.intn(26)))
	}
	return b
}

// Beam's PersonGenerator lists.
var (
	usStates   = [...]string{"AZ", "CA", "ID", "OR", "WA", "WY"}
	usCities   = [...]string{"Phoenix", "Los Angeles", "San Francisco", "Boise", "Portland", "Bend", "Redmond", "Seattle", "Kent", "Cheyenne"}
	firstNames = [...]string{"Peter", "Paul", "Luke", "John", "Saul", "Vicky", "Kate", "Julie", "Sarah", "Deiter", "Walter"}
	lastNames  = [...]string{"Shultz", "Abrams", "Spencer", "White", "Bartels", "Walton", "Smith", "Jones", "Noris"}
)

// Flink's hot channels.
var hotChannels = [...]string{"Google", "Facebook", "Baidu", "Apple"}

type channelURL struct{ channel, url string }

// tables are computed once per process from a fixed seed, independently of
// any Config, as Flink's static HOT_URLS and CHANNEL_URL_CACHE are (Flink
// fills them from unseeded Randoms; a fixed seed keeps runs reproducible).
var tables struct {
	once  sync.Once
	names [len(firstNames) * len(lastNames)]string
	hot   [len(hotChannels)]channelURL
	cold  [channelsNumber]channelURL
	pad   string
}

const padLen = 1 << 16

func buildTables() {
	r := rng{s: mix64(0x6e65786d61726b)} // "nexmark"
	for f, first := range firstNames {
		for l, last := range lastNames {
			tables.names[f*len(lastNames)+l] = first + " " + last
		}
	}
	for k, ch := range hotChannels {
		tables.hot[k] = channelURL{ch, baseURL(&r)}
	}
	for n := range channelsNumber {
		url := baseURL(&r)
		if r.intn(10) > 0 {
			// Java's Math.abs(Integer.reverse(n)), which leaves MIN_VALUE negative.
			v := int32(bits.Reverse32(uint32(n)))
			if v < 0 {
				v = -v
			}
			url += "&channel_id=" + strconv.Itoa(int(v))
		}
		tables.cold[n] = channelURL{"channel-" + strconv.Itoa(n), url}
	}
	tables.pad = string(appendLetters(make([]byte, 0, padLen), &r, padLen))
}

// baseURL is Flink's BidGenerator.getBaseUrl: three nextString(5, '_')
// path segments (a '_' where Beam's nextString has a space; not trimmed).
func baseURL(r *rng) string {
	b := []byte("https://www.nexmark.com/")
	for range 3 {
		for n := minStringLength + r.intn(5-minStringLength); n > 0; n-- {
			if r.intn(13) == 0 {
				b = append(b, '_')
			} else {
				b = append(b, byte('a'+r.intn(26)))
			}
		}
		b = append(b, '/')
	}
	return string(append(b, "item.htm?query=1"...))
}

// rng is a splitmix64 stream (a math/rand/v2 Source), seeded per event from
// (Seed, i) and kept on the stack.
type rng struct{ s uint64 }

var _ rand.Source = (*rng)(nil)

const golden = 0x9e3779b97f4a7c15

func mix64(z uint64) uint64 {
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

func (r *rng) Uint64() uint64 {
	r.s += golden
	return mix64(r.s)
}

// uint64n is uniform in [0, n), n > 0 (Lemire's multiply-shift with
// rejection, as math/rand/v2).
func (r *rng) uint64n(n uint64) uint64 {
	hi, lo := bits.Mul64(r.Uint64(), n)
	if lo < n {
		thresh := -n % n
		for lo < thresh {
			hi, lo = bits.Mul64(r.Uint64(), n)
		}
	}
	return hi
}

func (r *rng) int64n(n int64) int64 { return int64(r.uint64n(uint64(n))) }
func (r *rng) intn(n int) int       { return int(r.uint64n(uint64(n))) }

// float64 is uniform in [0, 1).
func (r *rng) float64() float64 { return float64(r.Uint64()>>11) * 0x1p-53 }

// varintLen, uvarintLen and strLen are the encoded lengths of an integer,
// a length prefix and a length-prefixed string.
var varintLen, uvarintLen = uvarintframe.VarintLen, uvarintframe.UvarintLen

func strLen(s string) int { return uvarintframe.BytesLen(len(s)) }
