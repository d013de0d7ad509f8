//! SCGI front end for gatehouse (in progress).
