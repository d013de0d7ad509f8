//! HTTP/1.1 front end for gatehouse, on hyper (in progress).
