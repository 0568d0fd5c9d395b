use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;

use anyhow::Result;
use llguidance::{api::TopLevelGrammar, ParserFactory};
use tokenizers::{decoders::DecoderWrapper, Tokenizer};

use crate::Constraint;

/// What each token decodes to, and the llguidance factory built over it (tandem patch).
///
/// Decoding a generated token needs only its bytes, so a thread of its own reads them from the
/// tokenizer while loading goes on, and the warm-up run waits only for that. The token trie and
/// the llguidance factory are built the first time a request needs them (a grammar, a tool
/// call): for SmolLM2's 49k-token vocabulary the trie took ~150 ms of a 0.4 s load, and on two
/// cores its builder competed with the weights and the warm-up run even when no request was
/// ever constrained.
#[derive(Clone)]
pub struct LlgFactory(Arc<LlgFactoryInner>);

struct LlgFactoryInner {
    bytes: OnceLock<Option<Arc<TokenBytes>>>,
    pending: Mutex<Option<JoinHandle<Result<Prepared>>>>,
    /// The byte tokenizer, kept for the factory's build after the bytes are taken.
    prepared: Mutex<Option<toktrie_hf_tokenizers::ByteTokenizer>>,
    built: OnceLock<Option<Arc<ParserFactory>>>,
}

struct Prepared {
    tokenizer: toktrie_hf_tokenizers::ByteTokenizer,
    bytes: TokenBytes,
}

/// Each token's bytes as llguidance's trie stores them: special tokens start with
/// `TokTrie::SPECIAL_TOKEN_MARKER`.
pub struct TokenBytes {
    info: toktrie::TokRxInfo,
    tokens: Vec<Vec<u8>>,
}

impl TokenBytes {
    fn token(&self, tok: u32) -> &[u8] {
        self.tokens.get(tok as usize).map_or(&[], Vec::as_slice)
    }

    /// `TokTrie::decode_ext` without the trie.
    pub fn decode_ext(&self, tokens: &[u32], include_special: bool) -> Vec<u8> {
        let mut res = Vec::with_capacity(tokens.len() * 6 + 32);
        for &tok in tokens {
            let t = self.token(tok);
            if t.is_empty() {
                if include_special {
                    res.extend_from_slice(format!("<[{tok}]>").as_bytes());
                }
            } else if t[0] == toktrie::TokTrie::SPECIAL_TOKEN_MARKER {
                if include_special {
                    res.extend_from_slice(&t[1..]);
                }
            } else {
                res.extend_from_slice(t);
            }
        }
        res
    }

    /// `TokTrie::has_extensions(token(tok))`: another token's bytes start with this token's and
    /// are longer. A scan of the vocabulary, once per stop token of a request.
    pub fn has_extensions(&self, tok: u32) -> bool {
        let t = self.token(tok);
        self.tokens
            .iter()
            .any(|u| u.len() > t.len() && u.starts_with(t))
    }

    /// `TokTrie::token_str`.
    pub fn token_str(&self, tok: u32) -> String {
        String::from_utf8_lossy(self.token(tok)).into_owned()
    }
}

impl LlgFactory {
    pub fn spawn(tokenizer: Tokenizer) -> Self {
        let handle = std::thread::Builder::new()
            .name("mistralrs-llg".into())
            .spawn(move || prepare(tokenizer))
            .ok();
        Self(Arc::new(LlgFactoryInner {
            bytes: OnceLock::new(),
            pending: Mutex::new(handle),
            prepared: Mutex::new(None),
            built: OnceLock::new(),
        }))
    }

    /// Each token's bytes, waiting for them if needed; `None` if reading them failed.
    pub fn token_bytes(&self) -> Option<Arc<TokenBytes>> {
        self.0
            .bytes
            .get_or_init(|| {
                let handle = self.0.pending.lock().ok()?.take()?;
                match handle.join() {
                    Ok(Ok(Prepared { tokenizer, bytes })) => {
                        *self.0.prepared.lock().ok()? = Some(tokenizer);
                        Some(Arc::new(bytes))
                    }
                    Ok(Err(e)) => {
                        tracing::warn!("the token table is unavailable: {e}");
                        None
                    }
                    Err(_) => {
                        tracing::warn!("the token table is unavailable: its builder panicked");
                        None
                    }
                }
            })
            .clone()
    }

    /// The factory, built on first use; `None` if building it failed.
    pub fn get(&self) -> Option<Arc<ParserFactory>> {
        self.0
            .built
            .get_or_init(|| {
                let bytes = self.token_bytes()?;
                let tokenizer = self.0.prepared.lock().ok()?.take()?;
                let tok_trie = toktrie::TokTrie::from(&bytes.info, &bytes.tokens);
                let env = toktrie_hf_tokenizers::ByteTokenizerEnv {
                    tokenizer,
                    tok_trie,
                }
                .to_env();
                match ParserFactory::new_simple(&env) {
                    Ok(factory) => Some(Arc::new(factory)),
                    Err(e) => {
                        tracing::warn!("llguidance is unavailable: {e}");
                        None
                    }
                }
            })
            .clone()
    }
}

fn prepare(mut tokenizer: Tokenizer) -> Result<Prepared> {
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
    Ok(Prepared {
        tokenizer: bt,
        bytes: TokenBytes {
            info,
            tokens: token_bytes,
        },
    })
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

#[cfg(test)]
mod tests {
    use super::TokenBytes;
    use toktrie::{TokRxInfo, TokTrie};

    #[test]
    fn token_bytes_decode_and_extend_as_the_trie_does() {
        let mut special = vec![TokTrie::SPECIAL_TOKEN_MARKER];
        special.extend_from_slice(b"<|im_end|>");
        let tokens: Vec<Vec<u8>> = vec![
            b"a".to_vec(),
            b"ab".to_vec(),
            b"abc".to_vec(),
            b" moon".to_vec(),
            b" ".to_vec(),
            special,
            Vec::new(),
            "é".as_bytes().to_vec(),
        ];
        let info = TokRxInfo::new(tokens.len() as u32, 5);
        let trie = TokTrie::from(&info, &tokens);
        let table = TokenBytes {
            info,
            tokens: tokens.clone(),
        };
        for tok in 0..tokens.len() as u32 {
            for special in [false, true] {
                assert_eq!(
                    table.decode_ext(&[tok], special),
                    trie.decode_ext(&[tok], special),
                    "token {tok}, special {special}"
                );
            }
            if !tokens[tok as usize].is_empty() {
                assert_eq!(
                    table.has_extensions(tok),
                    trie.has_extensions(trie.token(tok)),
                    "token {tok}"
                );
            }
        }
        assert!(table.has_extensions(4), "\" \" is a prefix of \" moon\"");
        assert!(!table.has_extensions(2));
    }
}
