package instrumentation

import (
	"errors"
	"fmt"
)

// These build the error values whose types errorTypeName looks through.
func fmtWrapError() error  { return fmt.Errorf("%w", errors.ErrUnsupported) }
func fmtWrapErrors() error { return fmt.Errorf("%w%w", errors.ErrUnsupported, errors.ErrUnsupported) }
