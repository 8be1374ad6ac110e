//! Graded evaluation answers: what `edgeway eval` writes and `edgeway calibrate` reads.
//!
//! Each answer is a row in `eval_results` tied to its row in `queries`, so
//! the query log stays the one record of every request, graded or not. The
//! key (run, set, item, route) makes a run resumable: what is already there
//! is skipped.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OptionalExtension};

use crate::record::QueryRecord;
use crate::writer::{insert_query, open_connection};
use crate::StoreError;

/// One graded answer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EvalRecord {
    /// The run's name: answers are compared within a run.
    pub run: String,
    /// The evaluation set.
    pub dataset: String,
    /// The item's id within the set.
    pub item_id: String,
    /// A finer grouping (an MMLU subject).
    pub subject: Option<String>,
    /// `edge` or `cloud`.
    pub route: String,
    /// The model that answered.
    pub model: Option<String>,
    /// The domain the router assigned.
    pub domain: Option<String>,
    /// The complexity score the router gave.
    pub score: Option<f32>,
    /// The question as the scorer saw it (the user message).
    pub question: String,
    /// The right answer, as text.
    pub reference: String,
    /// The model's answer.
    pub answer: String,
    /// What the grader read from the answer.
    pub extracted: Option<String>,
    /// In `[0, 1]`.
    pub grade: f64,
    /// Whether it counts as right.
    pub correct: bool,
    /// The answer's confidence as escalation reads it, a log-probability: the least sure
    /// constrained choice's probability among its allowed values when the answer was held to a
    /// schema with choices, else the mean log-probability of its tokens (when the backend gave them).
    pub mean_logprob: Option<f64>,
    /// Tokens in.
    pub prompt_tokens: u32,
    /// Tokens out.
    pub completion_tokens: u32,
    /// Time for the whole answer.
    pub latency_ms: f64,
    /// Money spent.
    pub cost: f64,
    /// Energy used on this device, when measured.
    pub energy_j: Option<f64>,
}

/// The columns [`eval_record`] reads, in its order.
pub(crate) const EVAL_COLUMNS: &str =
    "run, dataset, item_id, subject, route, model, domain, score, question, reference,
    answer, extracted, grade, correct, mean_logprob, prompt_tokens, completion_tokens, latency_ms, cost, energy_j";

/// An [`EvalRecord`] from [`EVAL_COLUMNS`] starting at column `at`.
pub(crate) fn eval_record(row: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<EvalRecord> {
    Ok(EvalRecord {
        run: row.get(at)?,
        dataset: row.get(at + 1)?,
        item_id: row.get(at + 2)?,
        subject: row.get(at + 3)?,
        route: row.get(at + 4)?,
        model: row.get(at + 5)?,
        domain: row.get(at + 6)?,
        score: row.get(at + 7)?,
        question: row.get(at + 8)?,
        reference: row.get(at + 9)?,
        answer: row.get(at + 10)?,
        extracted: row.get(at + 11)?,
        grade: row.get(at + 12)?,
        correct: row.get(at + 13)?,
        mean_logprob: row.get(at + 14)?,
        prompt_tokens: row.get(at + 15)?,
        completion_tokens: row.get(at + 16)?,
        latency_ms: row.get(at + 17)?,
        cost: row.get(at + 18)?,
        energy_j: row.get(at + 19)?,
    })
}

/// A synchronous handle on the log for evaluation runs and calibration.
pub struct EvalLog {
    conn: Connection,
    path: PathBuf,
}

impl EvalLog {
    /// Opens (creating and migrating if needed) the log at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        Ok(Self { conn: open_connection(&path)?, path })
    }

    fn error(&self) -> impl FnOnce(rusqlite::Error) -> StoreError + '_ {
        move |source| StoreError::Sqlite { path: self.path.display().to_string(), source }
    }

    /// The (set, item, route) keys already answered in `run`.
    pub fn answered(&self, run: &str) -> Result<HashSet<(String, String, String)>, StoreError> {
        let mut statement = self
            .conn
            .prepare("SELECT dataset, item_id, route FROM eval_results WHERE run = ?1")
            .map_err(self.error())?;
        let rows = statement
            .query_map([run], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
            .map_err(self.error())?
            .collect::<Result<HashSet<_>, _>>()
            .map_err(self.error())?;
        Ok(rows)
    }

    /// Writes a query row and its graded answer in one transaction; returns the query id.
    pub fn insert(&mut self, query: &QueryRecord, result: &EvalRecord) -> Result<i64, StoreError> {
        let path = self.path.display().to_string();
        let sqlite = |source| StoreError::Sqlite { path: path.clone(), source };
        let tx = self.conn.transaction().map_err(sqlite)?;
        let query_id = insert_query(&tx, query).map_err(sqlite)?;
        tx.execute(
            "INSERT OR REPLACE INTO eval_results (query_id, run, dataset, item_id, subject, route, model, domain, score,
                question, reference, answer, extracted, grade, correct, mean_logprob, prompt_tokens, completion_tokens,
                latency_ms, cost, energy_j)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21)",
            params![
                query_id,
                result.run,
                result.dataset,
                result.item_id,
                result.subject,
                result.route,
                result.model,
                result.domain,
                result.score,
                result.question,
                result.reference,
                result.answer,
                result.extracted,
                result.grade,
                result.correct,
                result.mean_logprob,
                result.prompt_tokens,
                result.completion_tokens,
                result.latency_ms,
                result.cost,
                result.energy_j,
            ],
        )
        .map_err(sqlite)?;
        tx.commit().map_err(sqlite)?;
        Ok(query_id)
    }

    /// Replaces the grade of one logged answer (after a grader improved); returns whether a row changed.
    pub fn update_grade(
        &self,
        key: (&str, &str, &str, &str),
        grade: f64,
        correct: bool,
        extracted: Option<&str>,
    ) -> Result<bool, StoreError> {
        let (run, dataset, item_id, route) = key;
        let changed = self
            .conn
            .execute(
                "UPDATE eval_results SET grade = ?5, correct = ?6, extracted = ?7
                 WHERE run = ?1 AND dataset = ?2 AND item_id = ?3 AND route = ?4
                   AND (grade != ?5 OR correct != ?6 OR extracted IS NOT ?7)",
                params![run, dataset, item_id, route, grade, correct, extracted],
            )
            .map_err(self.error())?;
        Ok(changed > 0)
    }

    /// Every graded answer of `run`, in insertion order.
    pub fn results(&self, run: &str) -> Result<Vec<EvalRecord>, StoreError> {
        let mut statement = self
            .conn
            .prepare(&format!("SELECT {EVAL_COLUMNS} FROM eval_results WHERE run = ?1 ORDER BY id"))
            .map_err(self.error())?;
        let rows = statement
            .query_map([run], |row| eval_record(row, 0))
            .map_err(self.error())?
            .collect::<Result<Vec<_>, _>>()
            .map_err(self.error())?;
        Ok(rows)
    }

    /// The runs in the log with how many answers each has, newest first.
    pub fn runs(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let mut statement = self
            .conn
            .prepare("SELECT run, COUNT(*) FROM eval_results GROUP BY run ORDER BY MAX(id) DESC")
            .map_err(self.error())?;
        let rows = statement
            .query_map([], |row| Ok((row.get(0)?, row.get::<_, i64>(1)? as u64)))
            .map_err(self.error())?
            .collect::<Result<Vec<_>, _>>()
            .map_err(self.error())?;
        Ok(rows)
    }

    /// The newest run's name, if any.
    pub fn latest_run(&self) -> Result<Option<String>, StoreError> {
        self.conn
            .query_row("SELECT run FROM eval_results ORDER BY id DESC LIMIT 1", [], |row| row.get(0))
            .optional()
            .map_err(self.error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_round_trip_and_a_run_knows_what_it_has_done() {
        let dir = std::env::temp_dir().join(format!("edgeway-store-eval-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut log = EvalLog::open(dir.join("q.db")).unwrap();
        let query =
            QueryRecord { endpoint: "eval".into(), route: "edge".into(), status: "ok".into(), ..Default::default() };
        let result = EvalRecord {
            run: "r1".into(),
            dataset: "arc-easy".into(),
            item_id: "x".into(),
            route: "edge".into(),
            question: "q".into(),
            reference: "A".into(),
            answer: "A".into(),
            grade: 1.0,
            correct: true,
            score: Some(0.25),
            mean_logprob: Some(-0.5),
            ..Default::default()
        };
        let id = log.insert(&query, &result).unwrap();
        assert!(id > 0);
        log.insert(&query, &EvalRecord { route: "cloud".into(), ..result.clone() }).unwrap();
        let done = log.answered("r1").unwrap();
        assert!(done.contains(&("arc-easy".into(), "x".into(), "edge".into())));
        assert_eq!(done.len(), 2);
        assert!(log.answered("r2").unwrap().is_empty());
        assert_eq!(log.results("r1").unwrap()[0], result);
        assert_eq!(log.runs().unwrap(), vec![("r1".to_owned(), 2)]);
        assert_eq!(log.latest_run().unwrap().as_deref(), Some("r1"));
        assert!(log.update_grade(("r1", "arc-easy", "x", "edge"), 0.0, false, Some("B")).unwrap());
        assert!(!log.update_grade(("r1", "arc-easy", "x", "edge"), 0.0, false, Some("B")).unwrap());
        assert!(!log.results("r1").unwrap()[0].correct);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
