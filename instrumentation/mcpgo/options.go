package mcpgo

// Option configures the middleware returned by [Middleware].
type Option interface {
	apply(config) config
}

type optionFunc func(config) config

func (f optionFunc) apply(c config) config { return f(c) }

type config struct {
	backend func(toolName string) string
}

func newConfig(opts []Option) config {
	var c config
	for _, o := range opts {
		if o != nil {
			c = o.apply(c)
		}
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
