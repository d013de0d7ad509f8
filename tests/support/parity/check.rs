//! Running cases through routes and comparing `echo`'s answers with the oracle field by field,
//! collecting every disagreement before failing, with each route's value side by side.

use serde_json::Value;

use super::case::Case;
use super::rig::Rig;
use super::route::Route;
use super::wire::Reply;

/// The fields of `echo`'s answer, compared one by one.
pub const FIELDS: [&str; 6] = [
    "method",
    "path",
    "query",
    "headers",
    "body_len",
    "body_sha256",
];

/// Collects disagreements over a run.
pub struct Matrix<'a> {
    rig: &'a Rig,
    failures: Vec<String>,
    answers: usize,
}

impl<'a> Matrix<'a> {
    pub fn new(rig: &'a Rig) -> Self {
        Self {
            rig,
            failures: Vec::new(),
            answers: 0,
        }
    }

    /// Sends `case` along each of `routes` and checks every answer against the oracle.
    pub fn run(&mut self, case: &Case, routes: &[Route]) {
        let mut got: Vec<(Route, Value)> = Vec::new();
        for &route in routes {
            let reply = self.rig.send(route, case);
            if let Some(answer) = self.answer(route, case, &reply) {
                got.push((route, answer));
            }
        }
        for field in FIELDS {
            let wrong: Vec<&(Route, Value)> = got
                .iter()
                .filter(|(route, v)| v[field] != case.expected(*route)[field])
                .collect();
            if wrong.is_empty() {
                continue;
            }
            let mut report = format!("{}: `{field}` disagrees\n", case.label);
            for (route, v) in &got {
                let mark = if wrong.iter().any(|(r, _)| r == route) {
                    "✗"
                } else {
                    "✓"
                };
                report.push_str(&format!("    {mark} {route:<26} {}\n", short(&v[field])));
            }
            let want = case.expected(wrong[0].0);
            report.push_str(&format!(
                "      want ({}) {}\n",
                wrong[0].0,
                short(&want[field])
            ));
            self.failures.push(report);
        }
    }

    /// Checks the envelope (status, type, interim response) and parses the JSON.
    fn answer(&mut self, route: Route, case: &Case, reply: &Reply) -> Option<Value> {
        self.answers += 1;
        let whom = format!("{} via {route}", case.label);
        if reply.status != 200 || reply.header("content-type") != Some("application/json") {
            self.failures.push(format!(
                "{whom}: status {} content-type {:?}: {}",
                reply.status,
                reply.header("content-type"),
                String::from_utf8_lossy(&reply.body)
            ));
            return None;
        }
        if case.expect_continue && route.is_http() && !reply.continued {
            self.failures
                .push(format!("{whom}: no `100 Continue` before the answer"));
        }
        match serde_json::from_slice(&reply.body) {
            Ok(v) => Some(v),
            Err(e) => {
                self.failures.push(format!("{whom}: not JSON ({e})"));
                None
            }
        }
    }

    /// Records a failure found by a test's own check.
    pub fn fail(&mut self, what: String) {
        self.failures.push(what);
    }

    /// Fails the test with every disagreement, or returns how many answers were checked.
    pub fn finish(self) -> usize {
        assert!(
            self.failures.is_empty(),
            "{} disagreement(s) over {} answers:\n\n{}\n{}",
            self.failures.len(),
            self.answers,
            self.failures.join("\n"),
            self.rig.logs()
        );
        self.answers
    }
}

/// A value for the report, long strings shortened.
fn short(v: &Value) -> String {
    let text = v.to_string();
    if text.chars().count() <= 300 {
        return text;
    }
    let head: String = text.chars().take(300).collect();
    format!("{head}… ({} chars)", text.chars().count())
}
