//! CGI front end for gatehouse: the binary run as a CGI program (in progress).
