//! Where the graded answers come from: the local query log, or every box's at a fleet's center
//! (`--fleet`), which is also where the chosen thresholds then go.

use edgeway_fleet::center::EvalFilter;

use super::*;

/// The graded answers calibration reads.
pub(super) enum Answers {
    /// The local query log.
    Local { log: EvalLog, path: PathBuf },
    /// A fleet's center.
    Fleet(FleetCenter),
}

/// A connection to the center, with the filters of `--site`, `--box`, `--fleet-since-hours` and
/// `--edge-model`.
pub(super) struct FleetCenter {
    runtime: tokio::runtime::Runtime,
    client: edgeway_fleet::Client,
    /// The filters, for any run.
    filter: EvalFilter,
}

impl Answers {
    /// The center when `--fleet` names one, else the local log.
    pub(super) fn open(args: &CalibrateArgs, file: &FileConfig, data_dir: &DataDir) -> anyhow::Result<Self> {
        if let Some(url) = &args.fleet {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let ca_file = args.fleet_ca_file.as_deref();
            let client = runtime
                .block_on(edgeway_fleet::ship::connect(url, std::time::Duration::from_secs(30), ca_file))
                .context("cannot reach the fleet center")?;
            if let Some(hours) = args.fleet_since_hours {
                anyhow::ensure!(hours > 0.0 && hours.is_finite(), "--fleet-since-hours must be a positive number");
            }
            return Ok(Self::Fleet(FleetCenter {
                runtime,
                client,
                filter: EvalFilter {
                    run: String::new(),
                    site: args.site.clone(),
                    box_id: args.box_id.clone(),
                    since_hours: args.fleet_since_hours,
                    edge_model: args.edge_model.clone(),
                },
            }));
        }
        let path = data_dir.query_log(args.log_path.clone().or(file.log.path.clone()).as_deref());
        anyhow::ensure!(path.is_file(), "no query log at {}; run `edgeway eval` first", path.display());
        let log = EvalLog::open(&path).with_context(|| format!("cannot open the query log {}", path.display()))?;
        Ok(Self::Local { log, path })
    }

    /// The run to calibrate on when none is named: the local log's latest, the center's largest.
    pub(super) fn default_run(&self) -> anyhow::Result<String> {
        match self {
            Self::Local { log, path } => log.latest_run()?.with_context(|| {
                format!("the query log {} holds no graded answers; run `edgeway eval` first", path.display())
            }),
            Self::Fleet(center) => {
                let runs = center.runtime.block_on(edgeway_fleet::center::eval_runs(&center.client))?;
                runs.into_iter().next().map(|(run, _)| run).context(
                    "the fleet center holds no graded answers; run `edgeway eval` on a box with [fleet] ship_text = true",
                )
            }
        }
    }

    /// The graded answers of `run`.
    pub(super) fn results(&self, run: &str) -> anyhow::Result<Vec<EvalRecord>> {
        match self {
            Self::Local { log, .. } => Ok(log.results(run)?),
            Self::Fleet(center) => {
                let filter = EvalFilter { run: run.to_owned(), ..center.filter.clone() };
                let (records, textless) =
                    center.runtime.block_on(edgeway_fleet::center::eval_results(&center.client, &filter))?;
                if textless > 0 {
                    println!(
                        "note: {textless} graded answers of `{run}` at the center have no text (their boxes do not \
                         set [fleet] ship_text = true) and are left out"
                    );
                }
                Ok(records)
            }
        }
    }

    /// The models that gave `run`'s edge answers at the center, for messages.
    pub(super) fn edge_models(&self, run: &str) -> String {
        let models = match self {
            // --edge-model filters the center's answers only.
            Self::Local { .. } => None,
            Self::Fleet(center) => {
                let filter = EvalFilter { run: run.to_owned(), edge_model: None, ..center.filter.clone() };
                center.runtime.block_on(edgeway_fleet::center::eval_results(&center.client, &filter)).ok().map(
                    |(records, _)| records.into_iter().filter(|r| r.route == "edge").filter_map(|r| r.model).collect(),
                )
            }
        };
        let mut models: Vec<String> = models.unwrap_or_default();
        models.sort();
        models.dedup();
        if models.is_empty() {
            return "none".into();
        }
        models.iter().map(|model| format!("`{model}`")).collect::<Vec<_>>().join(", ")
    }

    /// The runs there are, for messages.
    pub(super) fn list_runs(&self) -> String {
        let runs = match self {
            Self::Local { log, .. } => log.runs().ok(),
            Self::Fleet(center) => center
                .runtime
                .block_on(edgeway_fleet::center::eval_runs(&center.client))
                .ok()
                .map(|runs| runs.into_iter().map(|(run, n)| (run, n.max(0) as u64)).collect()),
        };
        match runs {
            Some(runs) if !runs.is_empty() => {
                runs.iter().map(|(run, n)| format!("`{run}` ({n})")).collect::<Vec<_>>().join(", ")
            }
            _ => "none".into(),
        }
    }
}

impl FleetCenter {
    /// Publishes `config` as the fleet's newest config version, for `--site`'s boxes or every
    /// box; returns its version.
    pub(super) fn publish(&self, config: &edgeway_fleet::follow::PushedConfig, note: &str) -> anyhow::Result<i64> {
        let push = edgeway_fleet::center::push_config(&self.client, config, self.filter.site.as_deref(), Some(note));
        Ok(self.runtime.block_on(push)?)
    }
}
