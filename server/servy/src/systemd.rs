//! TODO(runtime)
