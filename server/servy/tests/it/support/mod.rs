//! TODO(runtime): the harness
