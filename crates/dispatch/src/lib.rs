//! Dispatcher (in progress).
