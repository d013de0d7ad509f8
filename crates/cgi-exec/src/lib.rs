//! CGI scripts run per request by gatehouse (in progress).
