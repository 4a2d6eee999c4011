package web

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"strings"
)

// Guard wraps the coordinator's HTTP handler with what a page that can
// cancel jobs needs to be safe in a browser:
//
//   - Host check against DNS rebinding: a Host that is a name must be
//     localhost or one the operator allowed (--http-host). IP addresses are
//     always accepted, because a rebinding attack needs a name the attacker
//     controls; health probes and scrapers that dial an IP keep working.
//   - Cross-site request forgery: a POST is refused when the browser says it
//     comes from another origin (Sec-Fetch-Site, else Origin against Host;
//     net/http's CrossOriginProtection), and a POST from a browser must
//     also carry the page's CSRF token, bound to the browser's weir_csrf
//     cookie. Requests without any browser header (curl, scripts) cannot be
//     forged by a web page and need no token.
//   - Headers: a Content-Security-Policy that allows only the page's own
//     scripts and forbids framing, nosniff, and no referrer.
type Guard struct {
	hosts  map[string]bool
	origin *http.CrossOriginProtection
	// secure marks the CSRF cookie Secure (the page is served over TLS).
	secure bool
}

// NewGuard allows the host names in hosts besides localhost; ports are
// ignored.
func NewGuard(hosts []string, secure bool) *Guard {
	g := &Guard{hosts: map[string]bool{"localhost": true}, origin: http.NewCrossOriginProtection(), secure: secure}
	for _, h := range hosts {
		if h = strings.TrimSpace(h); h != "" {
			g.hosts[strings.ToLower(hostOnly(h))] = true
		}
	}
	return g
}

const (
	csrfCookie = "weir_csrf"
	csrfHeader = "X-Weir-Csrf"
	// contentSecurityPolicy allows the page's own script and stylesheet, the
	// inline style attributes its meters use, and live updates from itself.
	contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)

type csrfKey struct{}

// CSRFToken is the token the page embeds for its POSTs.
func CSRFToken(ctx context.Context) string {
	s, _ := ctx.Value(csrfKey{}).(string)
	return s
}

// Wrap returns h behind the guard.
func (g *Guard) Wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hdr := w.Header()
		hdr.Set("Content-Security-Policy", contentSecurityPolicy)
		hdr.Set("X-Content-Type-Options", "nosniff")
		hdr.Set("X-Frame-Options", "DENY")
		hdr.Set("Referrer-Policy", "no-referrer")
		// Probes send whatever Host they dialled; /healthz tells nothing.
		if r.URL.Path != "/healthz" && !g.hostAllowed(r.Host) {
			writeErrorText(w, http.StatusForbidden, fmt.Sprintf("host %q is not allowed (DNS rebinding protection): start the coordinator with --http-host %s to serve it", hostOnly(r.Host), hostOnly(r.Host)))
			return
		}
		token := g.sessionToken(w, r)
		if !safeMethod(r.Method) {
			if err := g.origin.Check(r); err != nil {
				writeErrorText(w, http.StatusForbidden, "cross-origin request refused")
				return
			}
			if fromBrowser(r) && !tokenMatches(r, token) && !formTokenMatches(r, token) {
				writeErrorText(w, http.StatusForbidden, "missing or wrong CSRF token: reload the page and try again")
				return
			}
		}
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), csrfKey{}, token)))
	})
}

func (g *Guard) hostAllowed(host string) bool {
	h := strings.ToLower(hostOnly(host))
	if h == "" {
		return false
	}
	if net.ParseIP(h) != nil {
		return true
	}
	return g.hosts[strings.TrimSuffix(h, ".")]
}

// sessionToken returns the browser's CSRF token, setting a new cookie when
// it has none or a malformed one.
func (g *Guard) sessionToken(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(csrfCookie); err == nil && validToken(c.Value) {
		return c.Value
	}
	b := make([]byte, 32)
	rand.Read(b)
	token := base64.RawURLEncoding.EncodeToString(b)
	http.SetCookie(w, &http.Cookie{Name: csrfCookie, Value: token, Path: "/", HttpOnly: true,
		Secure: g.secure, SameSite: http.SameSiteStrictMode})
	return token
}

func validToken(s string) bool {
	b, err := base64.RawURLEncoding.DecodeString(s)
	return err == nil && len(b) == 32
}

// tokenMatches checks the request's token against the cookie's. A request
// that arrived without the cookie got a fresh token it cannot know.
func tokenMatches(r *http.Request, token string) bool {
	if c, err := r.Cookie(csrfCookie); err != nil || c.Value != token {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(r.Header.Get(csrfHeader)), []byte(token)) == 1
}

// formTokenMatches accepts the CSRF token in a form's "csrf" field, for the
// one page that posts a plain HTML form (the login).
func formTokenMatches(r *http.Request, token string) bool {
	if c, err := r.Cookie(csrfCookie); err != nil || c.Value != token {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(r.PostFormValue("csrf")), []byte(token)) == 1
}

// fromBrowser reports whether a request carries what browsers add (and
// page scripts cannot remove): only those can be forged by a web page.
func fromBrowser(r *http.Request) bool {
	return r.Header.Get("Sec-Fetch-Site") != "" || r.Header.Get("Origin") != "" || r.Header.Get("Cookie") != ""
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return strings.Trim(h, "[]")
	}
	return strings.Trim(hostport, "[]")
}
