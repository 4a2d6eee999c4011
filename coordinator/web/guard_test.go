package web

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

// guarded serves the fake backend behind a Guard that also allows
// status.example.
func guarded(t *testing.T) (*httptest.Server, *fake) {
	t.Helper()
	f := &fake{}
	srv := httptest.NewServer(NewGuard([]string{"status.example:8080"}, false).Wrap(New(f, slog.New(slog.DiscardHandler))))
	t.Cleanup(srv.Close)
	return srv, f
}

func do(t *testing.T, srv *httptest.Server, method, path string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestGuardHostCheck(t *testing.T) {
	srv, _ := guarded(t)
	for _, c := range []struct {
		host, path string
		code       int
	}{
		{"localhost:9", "/", 200},
		{"127.0.0.1:9", "/", 200},
		{"10.0.0.5:8080", "/api/v1/overview", 200},
		{"[fd00::5]:8080", "/", 200},
		{"status.example", "/", 200},
		{"STATUS.example.:1", "/", 200},
		{"evil.example", "/", 403},
		{"evil.example:8080", "/api/v1/jobs/j1/detail", 403},
		{"localhost.evil.example", "/", 403},
		{"evil.example", "/healthz", 404}, // passes the guard; the fake serves no /healthz
	} {
		resp, body := do(t, srv, "GET", c.path, map[string]string{"Host": c.host})
		if resp.StatusCode != c.code {
			t.Errorf("GET %s with Host %s: %d %s, want %d", c.path, c.host, resp.StatusCode, body, c.code)
		}
		if c.code == 403 && !strings.Contains(body, "--http-host") {
			t.Errorf("the refusal does not say how to allow the host: %s", body)
		}
	}
}

func TestGuardHeaders(t *testing.T) {
	srv, _ := guarded(t)
	resp, _ := do(t, srv, "GET", "/", nil)
	for k, want := range map[string]string{
		"Content-Security-Policy": "frame-ancestors 'none'",
		"X-Content-Type-Options":  "nosniff",
		"X-Frame-Options":         "DENY",
	} {
		if got := resp.Header.Get(k); !strings.Contains(got, want) {
			t.Errorf("%s = %q, want it to hold %q", k, got, want)
		}
	}
}

func TestGuardCSRF(t *testing.T) {
	srv, f := guarded(t)
	// A page visit gives the browser its cookie and the page the same token.
	resp, page := do(t, srv, "GET", "/jobs/j1", map[string]string{"Sec-Fetch-Site": "none"})
	var cookie *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == csrfCookie {
			cookie = c
		}
	}
	if cookie == nil || !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode {
		t.Fatalf("page visit set cookie %+v, want an HttpOnly SameSite=Strict %s", cookie, csrfCookie)
	}
	m := regexp.MustCompile(`<meta name="weir-csrf" content="([^"]+)">`).FindStringSubmatch(page)
	if m == nil || m[1] != cookie.Value {
		t.Fatalf("the page embeds token %v, the cookie is %q", m, cookie.Value)
	}
	token := cookie.Value
	withCookie := "weir_csrf=" + token

	for _, c := range []struct {
		name string
		hdr  map[string]string
		code int
	}{
		{"another site's form", map[string]string{"Origin": "https://evil.example", "Cookie": withCookie, csrfHeader: token}, 403},
		{"another site's fetch", map[string]string{"Sec-Fetch-Site": "cross-site", "Cookie": withCookie, csrfHeader: token}, 403},
		{"a sibling subdomain", map[string]string{"Sec-Fetch-Site": "same-site", "Cookie": withCookie, csrfHeader: token}, 403},
		{"a rebound name", map[string]string{"Host": "evil.example", "Sec-Fetch-Site": "same-origin", "Cookie": withCookie, csrfHeader: token}, 403},
		{"the page without the token", map[string]string{"Sec-Fetch-Site": "same-origin", "Cookie": withCookie}, 403},
		{"the page with a wrong token", map[string]string{"Sec-Fetch-Site": "same-origin", "Cookie": withCookie, csrfHeader: strings.Repeat("A", 43)}, 403},
		{"a token without its cookie", map[string]string{"Sec-Fetch-Site": "same-origin", csrfHeader: token}, 403},
	} {
		resp, body := do(t, srv, "POST", "/api/v1/jobs/j1/cancel", c.hdr)
		if resp.StatusCode != c.code {
			t.Errorf("%s: POST cancel = %d %s, want %d", c.name, resp.StatusCode, body, c.code)
		}
	}
	if len(f.cancelled) != 0 {
		t.Fatalf("refused requests cancelled %v", f.cancelled)
	}
	if resp, body := do(t, srv, "POST", "/api/v1/jobs/j1/cancel", map[string]string{"Sec-Fetch-Site": "same-origin", "Cookie": withCookie, csrfHeader: token}); resp.StatusCode != 200 {
		t.Errorf("the page's own POST: %d %s", resp.StatusCode, body)
	}
	// A script with no browser headers cannot be driven by a web page.
	if resp, body := do(t, srv, "POST", "/api/v1/jobs/j1/cancel", nil); resp.StatusCode != 200 {
		t.Errorf("curl's POST: %d %s", resp.StatusCode, body)
	}
	if strings.Join(f.cancelled, ",") != "j1,j1" {
		t.Errorf("cancelled %v, want j1 twice", f.cancelled)
	}
}
