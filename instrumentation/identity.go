package instrumentation

import "context"

type identityKey struct{}

type identity struct{ subject, role string }

// ContextWithIdentity returns a copy of ctx that carries the caller's subject
// and role. A gateway's authentication layer calls it once per request; the
// default identity hook of an [Auditor] ([IdentityFromContext]) reads it.
func ContextWithIdentity(ctx context.Context, subject, role string) context.Context {
	return context.WithValue(ctx, identityKey{}, identity{subject: subject, role: role})
}

// IdentityFromContext returns the subject and role stored by
// [ContextWithIdentity], or empty strings. It is the default identity hook.
func IdentityFromContext(ctx context.Context) (subject, role string) {
	if ctx == nil {
		return "", ""
	}
	id, _ := ctx.Value(identityKey{}).(identity)
	return id.subject, id.role
}
