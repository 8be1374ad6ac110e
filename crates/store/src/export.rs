//! Logged requests read back as questions, for `edgeway export-set`: the user's own traffic,
//! turned into an evaluation set to grade (with references added, or by a judge model).

use std::path::Path;

use rusqlite::params;

use crate::writer::open_connection;
use crate::StoreError;

/// One logged request's prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedPrompt {
    /// The query log's row id.
    pub id: i64,
    /// The routing domain it was given.
    pub domain: Option<String>,
    /// The prompt as logged: a completion's text, or a chat's messages as `role: content` lines.
    pub text: String,
}

/// Requests answered from `since_ms` (Unix milliseconds) on whose text was logged, oldest first,
/// each distinct prompt once, at most `limit`: chats and completions served to clients (not
/// `edgeway eval`'s own questions, not embeddings), that did not fail.
pub fn logged_prompts(path: &Path, since_ms: i64, limit: usize) -> Result<Vec<LoggedPrompt>, StoreError> {
    let shown = path.display().to_string();
    let sqlite = |source| StoreError::Sqlite { path: shown.clone(), source };
    let conn = open_connection(path)?;
    let mut statement = conn
        .prepare(
            "SELECT MIN(id), domain, prompt_text FROM queries
             WHERE ts_ms >= ?1 AND prompt_text IS NOT NULL AND TRIM(prompt_text) != ''
               AND status = 'ok' AND endpoint NOT IN ('eval', 'embeddings')
             GROUP BY prompt_text ORDER BY MIN(id) LIMIT ?2",
        )
        .map_err(sqlite)?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = statement
        .query_map(params![since_ms, limit], |row| {
            Ok(LoggedPrompt { id: row.get(0)?, domain: row.get(1)?, text: row.get(2)? })
        })
        .map_err(sqlite)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(sqlite)?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{QueryLog, QueryRecord};

    #[test]
    fn served_prompts_come_back_once_each_and_eval_rows_do_not() {
        let dir = std::env::temp_dir().join(format!("edgeway-export-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("queries.db");
        let _ = std::fs::remove_file(&path);
        let log = QueryLog::open(&path).unwrap();
        let row = |endpoint: &str, status: &str, text: Option<&str>| QueryRecord {
            ts_ms: 1_000,
            endpoint: endpoint.into(),
            route: "edge".into(),
            domain: Some("code".into()),
            status: status.into(),
            prompt_text: text.map(str::to_owned),
            ..QueryRecord::default()
        };
        for record in [
            row("chat", "ok", Some("user: fix my regex")),
            row("chat", "ok", Some("user: fix my regex")),
            row("completions", "ok", Some("def add(a, b):")),
            row("chat", "error", Some("user: this one failed")),
            row("eval", "ok", Some("an eval question")),
            row("chat", "ok", None),
        ] {
            log.record(record);
        }
        drop(log);
        let prompts = logged_prompts(&path, 0, 100).unwrap();
        let texts: Vec<&str> = prompts.iter().map(|p| p.text.as_str()).collect();
        assert_eq!(texts, ["user: fix my regex", "def add(a, b):"]);
        assert_eq!(prompts[0].domain.as_deref(), Some("code"));
        assert_eq!(logged_prompts(&path, 0, 1).unwrap().len(), 1);
        assert!(logged_prompts(&path, 2_000, 100).unwrap().is_empty());
        let _ = std::fs::remove_dir_all(dir);
    }
}
