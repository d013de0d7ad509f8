//! Python WSGI apps in an embedded CPython for gatehouse (in progress).
