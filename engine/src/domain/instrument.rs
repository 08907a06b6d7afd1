//! Instruments and interned symbols.
//!
//! Every instrument the engine serves gets a dense [`SymbolId`] at start-up. Hot-path
//! structures (book routing, subscriber lists, per-symbol fan-out state) are plain vectors
//! indexed by that id, so the symbol string is touched only at the edges: parsing a client's
//! subscribe request and encoding an outgoing message (where the name is pre-rendered once).

use std::collections::HashMap;
use std::sync::Arc;

use super::decimal::Scale;

/// Dense, interned identifier of an instrument within one engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SymbolId(pub u32);

impl SymbolId {
    /// The id as a vector index.
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

/// Static description of a tradable instrument.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Instrument {
    /// The name clients subscribe with, e.g. `SYM0001` or `BTC-USD`.
    pub symbol: String,
    /// The venue (adapter instance) that publishes it.
    pub venue: String,
    /// Decimal places of prices.
    pub price_scale: Scale,
    /// Decimal places of sizes.
    pub size_scale: Scale,
}

/// Errors building a [`SymbolTable`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SymbolTableError {
    #[error("symbol {0:?} is defined twice")]
    Duplicate(String),
    #[error("symbol {0:?} is not a valid name (1-32 chars of A-Z a-z 0-9 . _ - / :)")]
    InvalidName(String),
}

/// Longest accepted symbol name.
pub const MAX_SYMBOL_LEN: usize = 32;

/// Whether `name` is acceptable as a symbol: short, printable ASCII without JSON specials, so
/// it can be embedded in JSON without escaping.
pub fn is_valid_symbol_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_SYMBOL_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'/' | b':'))
}

/// The immutable set of instruments an engine serves, with name → id interning.
#[derive(Debug, Default)]
pub struct SymbolTable {
    instruments: Vec<Instrument>,
    by_name: HashMap<String, SymbolId>,
}

impl SymbolTable {
    /// Builds the table; ids are assigned in order.
    pub fn new(instruments: Vec<Instrument>) -> Result<Arc<Self>, SymbolTableError> {
        let mut by_name = HashMap::with_capacity(instruments.len());
        for (i, ins) in instruments.iter().enumerate() {
            if !is_valid_symbol_name(&ins.symbol) {
                return Err(SymbolTableError::InvalidName(ins.symbol.clone()));
            }
            if by_name
                .insert(ins.symbol.clone(), SymbolId(i as u32))
                .is_some()
            {
                return Err(SymbolTableError::Duplicate(ins.symbol.clone()));
            }
        }
        Ok(Arc::new(SymbolTable {
            instruments,
            by_name,
        }))
    }

    /// Looks a symbol name up.
    pub fn lookup(&self, name: &str) -> Option<SymbolId> {
        self.by_name.get(name).copied()
    }

    /// The instrument behind an id.
    ///
    /// # Panics
    /// If `id` was not issued by this table.
    pub fn get(&self, id: SymbolId) -> &Instrument {
        &self.instruments[id.index()]
    }

    /// Number of instruments.
    pub fn len(&self) -> usize {
        self.instruments.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.instruments.is_empty()
    }

    /// All instruments in id order.
    pub fn iter(&self) -> impl Iterator<Item = (SymbolId, &Instrument)> {
        self.instruments
            .iter()
            .enumerate()
            .map(|(i, ins)| (SymbolId(i as u32), ins))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ins(name: &str) -> Instrument {
        Instrument {
            symbol: name.into(),
            venue: "test".into(),
            price_scale: Scale::new(2),
            size_scale: Scale::new(0),
        }
    }

    #[test]
    fn interns_in_order() {
        let t = SymbolTable::new(vec![ins("A"), ins("B")]).unwrap();
        assert_eq!(t.lookup("B"), Some(SymbolId(1)));
        assert_eq!(t.lookup("C"), None);
        assert_eq!(t.get(SymbolId(0)).symbol, "A");
    }

    #[test]
    fn rejects_duplicates_and_bad_names() {
        assert!(matches!(
            SymbolTable::new(vec![ins("A"), ins("A")]),
            Err(SymbolTableError::Duplicate(_))
        ));
        assert!(matches!(
            SymbolTable::new(vec![ins("A\"B")]),
            Err(SymbolTableError::InvalidName(_))
        ));
    }
}
