package authz

import (
	"encoding/json"
	"net/http"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// HTTP admits requests to h as the gRPC interceptors admit calls: by the
// client certificate of the TLS connection or an "Authorization: Bearer"
// header, then by right(r). A refusal is 401 or 403 with {"error": reason}.
func (a Authenticator) HTTP(pol Policy, right func(*http.Request) Right, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rt := right(r)
		if rt.Public {
			h.ServeHTTP(w, r)
			return
		}
		p, err := a.authenticate(r.Context(), r.TLS, r.Header.Get("Authorization"))
		if err == nil {
			err = pol.Check(p, r.Method+" "+r.URL.Path, rt)
		}
		if err != nil {
			code := http.StatusForbidden
			if status.Code(err) == codes.Unauthenticated {
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

// The rights HTTP routes need, for the coordinator's route table.
var (
	View    = view
	Operate = operate
	Public  = public
	Admin   = admin
)
