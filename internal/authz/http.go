package authz

import (
	"encoding/json"
	"net/http"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// SessionCookie holds the token a browser logged in with (the page's login
// form); it counts as an "Authorization: Bearer" header.
const SessionCookie = "weir_session"

// HTTP admits requests to h as the gRPC interceptors admit calls: by the
// client certificate of the TLS connection, an "Authorization: Bearer"
// header or the session cookie, then by right(r). A refusal is 401 or 403 with {"error": reason}.
func (a Authenticator) HTTP(pol Policy, right func(*http.Request) Right, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rt := right(r)
		if rt.Public {
			h.ServeHTTP(w, r)
			return
		}
		authorization := r.Header.Get("Authorization")
		if c, err := r.Cookie(SessionCookie); err == nil && authorization == "" {
			authorization = "Bearer " + c.Value // a browser that logged in with a token
		}
		p, err := a.authenticate(r.Context(), r.TLS, authorization)
		if err == nil {
			err = pol.Check(p, r.Method+" "+r.URL.Path, rt)
		}
		if err != nil {
			code := http.StatusForbidden
			if status.Code(err) == codes.Unauthenticated {
				if r.Method == http.MethodGet && strings.Contains(r.Header.Get("Accept"), "text/html") {
					http.Redirect(w, r, "/login", http.StatusSeeOther) // a person: to the login form
					return
				}
				code = http.StatusUnauthorized
				w.Header().Set("WWW-Authenticate", `Bearer realm="weir"`)
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(code)
			json.NewEncoder(w).Encode(map[string]string{"error": status.Convert(err).Message()})
			return
		}
		h.ServeHTTP(w, r.WithContext(WithPrincipal(r.Context(), p)))
	})
}
