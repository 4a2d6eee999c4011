package nexmark

// Person is a new user of the auction site.
type Person struct {
	ID           int64
	Name         string
	EmailAddress string
	CreditCard   string
	City         string
	State        string
	DateTime     int64 // event time, unix ms
	Extra        string
}

// Auction is a new item for sale.
type Auction struct {
	ID          int64
	ItemName    string
	Description string
	InitialBid  int64
	Reserve     int64
	DateTime    int64 // event time, unix ms
	Expires     int64 // unix ms; bids at or after it do not count
	Seller      int64 // a Person ID
	Category    int64
	Extra       string
}

// Bid is a bid on an auction.
type Bid struct {
	Auction  int64
	Bidder   int64 // a Person ID
	Price    int64 // cents
	Channel  string
	URL      string
	DateTime int64 // event time, unix ms
	Extra    string
}

// Kind says which of an Event's records is set.
type Kind uint8

const (
	KindPerson Kind = iota
	KindAuction
	KindBid
)

// Event is one Nexmark event: exactly the record its Kind names is non-nil.
//
// Emit is the wall-clock time (unix ns) at which the source emitted the
// event when the job measures latency, else 0. It is not part of the
// event's identity: the codec carries it, the checksum ignores it.
type Event struct {
	Kind    Kind
	Person  *Person
	Auction *Auction
	Bid     *Bid
	Emit    int64
}

// Time is the event's event time (unix ms).
func (e Event) Time() int64 {
	switch e.Kind {
	case KindPerson:
		return e.Person.DateTime
	case KindAuction:
		return e.Auction.DateTime
	default:
		return e.Bid.DateTime
	}
}
