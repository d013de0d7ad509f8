//! `env`: the request's meta-variables as `NAME=value` lines, sorted, like `printenv.cgi`.

use gatehouse_channel_request::{AppError, Application, BoxFuture, Request, Response};

/// Answers with the request's CGI variables, one `NAME=value` line each, sorted by name.
#[derive(Debug, Clone, Copy, Default)]
pub struct EnvDump;

impl Application for EnvDump {
    fn call<'a>(
        &'a self,
        req: Request,
        resp: &'a mut Response,
    ) -> BoxFuture<'a, Result<(), AppError>> {
        Box::pin(async move {
            let mut vars: Vec<_> = req.env.iter().collect();
            vars.sort();
            let mut body = Vec::new();
            for (name, value) in vars {
                body.extend_from_slice(name);
                body.push(b'=');
                body.extend_from_slice(value);
                body.push(b'\n');
            }
            resp.send_full(200, "text/plain", body).await?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builtin::testing::run;

    #[tokio::test]
    async fn sorted_lines() {
        let vars = [("REQUEST_METHOD", "GET"), ("A", "1"), ("HTTP_X", "a=b")];
        let (head, body) = run(&EnvDump, &vars, b"").await;
        assert_eq!(head.status(), 200);
        assert_eq!(body, b"A=1\nHTTP_X=a=b\nREQUEST_METHOD=GET\n");
    }
}
