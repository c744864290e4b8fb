//! TODO(redirects)
