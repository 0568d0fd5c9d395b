use std::sync::Arc;

use anyhow::Result;
use llguidance::{api::TopLevelGrammar, ParserFactory};
use tokenizers::{decoders::DecoderWrapper, Tokenizer};

use crate::Constraint;

/// The llguidance factory (and its token trie), built on a thread of its own while the rest of
/// loading and the warm-up run go on: building the trie for a 49k-token vocabulary took about
/// as long as the rest of loading a small model (tandem patch). Whoever needs it first waits for
/// the build if it is still running.
#[derive(Clone)]
pub struct LlgFactory(Arc<LlgFactoryInner>);

struct LlgFactoryInner {
    built: std::sync::OnceLock<Option<Arc<ParserFactory>>>,
    pending: std::sync::Mutex<Option<std::thread::JoinHandle<Result<Arc<ParserFactory>>>>>,
}

impl LlgFactory {
    pub fn spawn(tokenizer: Tokenizer) -> Self {
        let handle = std::thread::Builder::new()
            .name("mistralrs-llg".into())
            .spawn(move || build_llg_factory(tokenizer))
            .ok();
        Self(Arc::new(LlgFactoryInner {
            built: std::sync::OnceLock::new(),
            pending: std::sync::Mutex::new(handle),
        }))
    }

    /// The factory, waiting for its build if needed; `None` if building it failed.
    pub fn get(&self) -> Option<Arc<ParserFactory>> {
        self.0
            .built
            .get_or_init(|| {
                let handle = self.0.pending.lock().ok()?.take()?;
                match handle.join() {
                    Ok(Ok(factory)) => Some(factory),
                    Ok(Err(e)) => {
                        tracing::warn!("llguidance is unavailable: {e}");
                        None
                    }
                    Err(_) => {
                        tracing::warn!("llguidance is unavailable: its builder panicked");
                        None
                    }
                }
            })
            .clone()
    }
}

pub fn build_llg_factory(mut tokenizer: Tokenizer) -> Result<Arc<ParserFactory>> {
    let decoder = match tokenizer.get_decoder() {
        Some(DecoderWrapper::Sequence(sequence)) if sequence.get_decoders().len() == 1 => {
            match &sequence.get_decoders()[0] {
                DecoderWrapper::ByteLevel(decoder) => Some(DecoderWrapper::ByteLevel(*decoder)),
                _ => None,
            }
        }
        _ => None,
    };
    if let Some(decoder) = decoder {
        tokenizer.with_decoder(Some(decoder));
    }

    // Collect special token info before from_tokenizer() consumes the tokenizer.
    let added_special: Vec<(u32, String)> = tokenizer
        .get_added_tokens_decoder()
        .into_iter()
        .filter(|(_, at)| at.special)
        .map(|(id, at)| (id, at.content))
        .collect();

    let bt = toktrie_hf_tokenizers::ByteTokenizer::from_tokenizer(tokenizer)?;
    let info = bt.tokrx_info();
    let mut token_bytes = bt.token_bytes();

    // Fix up special tokens that from_tokenizer() may have missed.
    // Tekken tokenizers add special tokens to the BPE base vocab first, which can
    // prevent the toktrie builder from applying the SPECIAL_TOKEN_MARKER prefix.
    for (id, content) in &added_special {
        let idx = *id as usize;
        if idx < token_bytes.len()
            && (token_bytes[idx].is_empty()
                || token_bytes[idx][0] != toktrie::TokTrie::SPECIAL_TOKEN_MARKER)
        {
            let mut bytes = content.as_bytes().to_vec();
            bytes.insert(0, toktrie::TokTrie::SPECIAL_TOKEN_MARKER);
            token_bytes[idx] = bytes;
        }
    }

    let tok_trie = toktrie::TokTrie::from(&info, &token_bytes);
    let env = toktrie_hf_tokenizers::ByteTokenizerEnv {
        tokenizer: bt,
        tok_trie,
    }
    .to_env();
    let factory = ParserFactory::new_simple(&env)?;
    Ok(Arc::new(factory))
}

pub fn llg_grammar_from_constraint(constraint: &Constraint) -> Result<Option<TopLevelGrammar>> {
    let grm = match constraint {
        Constraint::Regex(regex) => TopLevelGrammar::from_regex(regex),
        Constraint::Lark(lark) => TopLevelGrammar::from_lark(lark.clone()),
        Constraint::JsonSchema(value) => TopLevelGrammar::from_json_schema(value.clone()),
        Constraint::Llguidance(value) => value.clone(),
        Constraint::None => return Ok(None),
    };
    Ok(Some(grm))
}

pub fn constraint_from_llg_grammar(
    factory: &ParserFactory,
    grm: TopLevelGrammar,
) -> Result<llguidance::Matcher> {
    let parser = factory.create_parser(grm)?;
    Ok(llguidance::Matcher::new(Ok(parser)))
}
