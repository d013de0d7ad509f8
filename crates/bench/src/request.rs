//! What a request looks like before encoding: the CGI meta-variables a front server would pass
//! (the set nginx's stock `fastcgi_params` sends, so the server does the same work as behind
//! nginx), shared by the FastCGI and SCGI encoders; the HTTP encoder uses the plan directly.

use crate::args::{Addr, Plan};

/// The CGI meta-variables (RFC 3875 section 4.1) for the plan's request, in nginx's order.
/// `CONTENT_LENGTH` is the body length, or empty without a body, as nginx sends it.
pub fn cgi_params(plan: &Plan) -> Vec<(Vec<u8>, Vec<u8>)> {
    let (script, query) = plan.path.split_once('?').unwrap_or((&plan.path, ""));
    let (server_name, server_port) = server_name_port(plan);
    let content_type = header(plan, "content-type").unwrap_or_default();
    let content_length = if plan.body.is_empty() && plan.method == "GET" {
        String::new()
    } else {
        plan.body.len().to_string()
    };
    let mut vars: Vec<(String, String)> = vec![
        ("QUERY_STRING".into(), query.into()),
        ("REQUEST_METHOD".into(), plan.method.clone()),
        ("CONTENT_TYPE".into(), content_type),
        ("CONTENT_LENGTH".into(), content_length),
        ("SCRIPT_NAME".into(), script.into()),
        ("REQUEST_URI".into(), plan.path.clone()),
        ("DOCUMENT_URI".into(), script.into()),
        ("DOCUMENT_ROOT".into(), "/var/www/html".into()),
        ("SERVER_PROTOCOL".into(), "HTTP/1.1".into()),
        ("REQUEST_SCHEME".into(), "http".into()),
        ("GATEWAY_INTERFACE".into(), "CGI/1.1".into()),
        ("SERVER_SOFTWARE".into(), "gatehouse-bench".into()),
        ("REMOTE_ADDR".into(), "127.0.0.1".into()),
        ("REMOTE_PORT".into(), "40000".into()),
        ("SERVER_ADDR".into(), "127.0.0.1".into()),
        ("SERVER_PORT".into(), server_port),
        ("SERVER_NAME".into(), server_name),
    ];
    if header(plan, "host").is_none() {
        vars.push(("HTTP_HOST".into(), plan.host.clone()));
    }
    for (name, value) in &plan.headers {
        let upper: String = name
            .chars()
            .map(|c| {
                if c == '-' {
                    '_'
                } else {
                    c.to_ascii_uppercase()
                }
            })
            .collect();
        if upper != "CONTENT_TYPE" && upper != "CONTENT_LENGTH" {
            vars.push((format!("HTTP_{upper}"), value.clone()));
        }
    }
    for (name, value) in &plan.params {
        match vars.iter_mut().find(|(n, _)| n == name) {
            Some(var) => var.1 = value.clone(),
            None => vars.push((name.clone(), value.clone())),
        }
    }
    vars.into_iter()
        .map(|(n, v)| (n.into_bytes(), v.into_bytes()))
        .collect()
}

/// The value of the first `--header` called `name` (ASCII case-insensitive).
pub fn header(plan: &Plan, name: &str) -> Option<String> {
    plan.headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.clone())
}

fn server_name_port(plan: &Plan) -> (String, String) {
    match &plan.addr {
        Addr::Tcp(sock) => {
            let name = plan
                .host
                .rsplit_once(':')
                .map_or(plan.host.as_str(), |(h, _)| h);
            (name.to_owned(), sock.port().to_string())
        }
        Addr::Unix(_) => (plan.host.clone(), "80".into()),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use clap::Parser;

    pub(crate) fn plan(args: &[&str]) -> Plan {
        let argv = std::iter::once("gatehouse-bench").chain(args.iter().copied());
        crate::args::Cli::try_parse_from(argv)
            .unwrap()
            .into_plan()
            .unwrap()
    }

    fn get<'a>(vars: &'a [(Vec<u8>, Vec<u8>)], name: &str) -> Option<&'a str> {
        vars.iter()
            .find(|(n, _)| n == name.as_bytes())
            .map(|(_, v)| std::str::from_utf8(v).unwrap())
    }

    #[test]
    fn nginx_like_variables() {
        let p = plan(&[
            "--fastcgi=127.0.0.1:9000",
            "--path=/a/b?x=1&y",
            "-H",
            "Content-Type: text/plain",
            "-H",
            "X-Trace-Id: 7",
            "--body-size=5",
        ]);
        let vars = cgi_params(&p);
        assert_eq!(get(&vars, "REQUEST_METHOD"), Some("POST"));
        assert_eq!(get(&vars, "SCRIPT_NAME"), Some("/a/b"));
        assert_eq!(get(&vars, "QUERY_STRING"), Some("x=1&y"));
        assert_eq!(get(&vars, "REQUEST_URI"), Some("/a/b?x=1&y"));
        assert_eq!(get(&vars, "CONTENT_LENGTH"), Some("5"));
        assert_eq!(get(&vars, "CONTENT_TYPE"), Some("text/plain"));
        assert_eq!(get(&vars, "HTTP_X_TRACE_ID"), Some("7"));
        assert_eq!(get(&vars, "HTTP_HOST"), Some("127.0.0.1:9000"));
        assert_eq!(get(&vars, "SERVER_NAME"), Some("127.0.0.1"));
        assert_eq!(get(&vars, "SERVER_PORT"), Some("9000"));
        assert_eq!(get(&vars, "HTTP_CONTENT_TYPE"), None);
        let p = plan(&[
            "--scgi=127.0.0.1:4000",
            "-P",
            "SCRIPT_FILENAME=/x.sh",
            "-P",
            "SERVER_NAME=h",
        ]);
        let vars = cgi_params(&p);
        assert_eq!(get(&vars, "SCRIPT_FILENAME"), Some("/x.sh"));
        assert_eq!(get(&vars, "SERVER_NAME"), Some("h"));
        assert_eq!(vars.iter().filter(|(n, _)| n == b"SERVER_NAME").count(), 1);
    }

    #[test]
    fn get_without_body_has_empty_length() {
        let vars = cgi_params(&plan(&["--fastcgi=unix:/x", "-H", "Host: example.org"]));
        assert_eq!(get(&vars, "CONTENT_LENGTH"), Some(""));
        assert_eq!(get(&vars, "HTTP_HOST"), Some("example.org"));
        assert_eq!(get(&vars, "SERVER_PORT"), Some("80"));
    }
}
