//! Builds the mistralrs engine for one local GGUF file. This is `GgufModelBuilder::build`
//! spelled out through `mistralrs::core`, for one reason: that builder hard-codes
//! `ModelDType::Auto`, and Auto probes BF16 then F16 with a test matmul, which candle's CPU
//! backend passes, so activations, the KV cache and attention ran in F16 on a CPU with no F16
//! arithmetic (every value converted on each use). Here the dtype is ours to choose.

use mistralrs::core::{
    AutoDeviceMapParams, DefaultSchedulerMethod, DeviceMapSetting, GGUFLoaderBuilder,
    GGUFSpecificConfig, MistralRsBuilder, ModelDType, SchedulerConfig, TokenSource,
};
use mistralrs::{Device, Model};

use crate::config::LocalDType;

pub(super) async fn build(dir: &str, file: &str, dtype: LocalDType) -> anyhow::Result<Model> {
    let loader = GGUFLoaderBuilder::new(
        None,
        None,
        dir.to_string(),
        vec![file.to_string()],
        GGUFSpecificConfig { topology: None },
        false,
        None,
    )
    .build();
    let dtype = match dtype {
        LocalDType::F32 => ModelDType::F32,
        LocalDType::Auto => ModelDType::Auto,
    };
    let pipeline = loader.load_model_from_hf(
        None,
        TokenSource::None,
        &dtype,
        &Device::Cpu,
        true,
        DeviceMapSetting::Auto(AutoDeviceMapParams::default_text()),
        None,
        None,
    )?;
    // One sequence at a time: mistralrs's CPU decode attention indexes its scratch buffers
    // without the batch, so concurrent sequences garble each other (docs/local-perf.md).
    let scheduler = SchedulerConfig::DefaultScheduler {
        method: DefaultSchedulerMethod::Fixed(1.try_into()?),
    };
    // The prefix cache stays off: on CPU it never evicts and it is off by one on an exact
    // follow-up turn (docs/local-perf.md). Warm turns pay a full prefill instead.
    let runner = MistralRsBuilder::new(pipeline, scheduler, false, None)
        .with_no_prefix_cache(true)
        .build()
        .await;
    Ok(Model::new(runner))
}
