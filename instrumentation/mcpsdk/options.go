package mcpsdk

import (
	"strings"

	"github.com/modelcontextprotocol/go-sdk/auth"
)

// Option configures the middleware returned by [Middleware].
type Option interface {
	apply(config) config
}

type optionFunc func(config) config

func (f optionFunc) apply(c config) config { return f(c) }

type config struct {
	backend func(toolName string) string
	role    func(*auth.TokenInfo) string
}

func newConfig(opts []Option) config {
	var c config
	for _, o := range opts {
		if o != nil {
			c = o.apply(c)
		}
	}
	if c.role == nil {
		c.role = DefaultRole
	}
	return c
}

// WithBackend sets the function that names the backend serving a tool. A
// handler may still name the backend of a call itself with
// instrumentation.SetBackend, which takes precedence.
func WithBackend(f func(toolName string) string) Option {
	return optionFunc(func(c config) config {
		c.backend = f
		return c
	})
}

// WithBackendName names the one backend that serves every tool. A handler
// may still name the backend of a call itself with
// instrumentation.SetBackend, which takes precedence.
func WithBackendName(name string) Option {
	return WithBackend(func(string) string { return name })
}

// WithRoleFromTokenInfo sets the function that derives the caller's role from
// the bearer token information of a request. The default is [DefaultRole].
func WithRoleFromTokenInfo(f func(*auth.TokenInfo) string) Option {
	return optionFunc(func(c config) config {
		c.role = f
		return c
	})
}

// DefaultRole returns the role of a token: Extra["role"] when it is a
// string, else the token's scopes joined with ",".
func DefaultRole(ti *auth.TokenInfo) string {
	if ti == nil {
		return ""
	}
	if r, ok := ti.Extra["role"].(string); ok {
		return r
	}
	return strings.Join(ti.Scopes, ",")
}
