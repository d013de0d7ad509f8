//! FastCGI 1.0 front end (in progress).
