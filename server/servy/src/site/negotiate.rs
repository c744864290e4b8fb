//! TODO(site)
