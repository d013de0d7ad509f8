//! gatehouse-bench: a load generator speaking FastCGI, SCGI and HTTP (in progress).
