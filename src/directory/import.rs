//! Many customers at once: an import (`Directory::import_json`) and the seed file
//! (`Directory::seed_json`), every entry validated before any is stored.

use super::{CustomerInput, Directory, DirectoryError, ValidCustomer};

/// Customers a seed file or an import writes at a time: enough to keep a pipelined Redis
/// connection busy, few enough that a large file does not flood the store.
const LOAD_CONCURRENCY: usize = 64;

impl Directory {
    /// Validates every entry of a seed file's JSON list first, then stores them all: one bad entry
    /// stores nothing, and the error lists each bad entry by position and id.
    pub async fn import_json(&self, json: &str) -> Result<usize, DirectoryError> {
        self.load_json(json, false).await
    }

    /// Like [`Directory::import_json`], but leaves customers that already exist as they are: what
    /// `directory.seed_file` does at every start, so a restart never undoes changes made since
    /// through the admin API or an import.
    pub async fn seed_json(&self, json: &str) -> Result<usize, DirectoryError> {
        self.load_json(json, true).await
    }

    async fn load_json(&self, json: &str, only_new: bool) -> Result<usize, DirectoryError> {
        self.writable()?;
        let inputs: Vec<CustomerInput> = serde_json::from_str(json).map_err(|e| {
            DirectoryError::Invalid(format!(
                "not a JSON list of {{id, email, phone, totp_secret}}: {e}"
            ))
        })?;
        let mut valid = Vec::with_capacity(inputs.len());
        let mut errors = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (i, input) in inputs.iter().enumerate() {
            match self.validate(input, None) {
                Ok(v) if !seen.insert(v.id.clone()) => {
                    errors.push(format!("entry {} ({}): id appears twice", i + 1, v.id))
                }
                Ok(v) => valid.push(v),
                Err(e) => errors.push(format!(
                    "entry {} ({}): {e}",
                    i + 1,
                    input.id.as_deref().unwrap_or("no id")
                )),
            }
        }
        if !errors.is_empty() {
            return Err(DirectoryError::Invalid(errors.join("; ")));
        }
        // Several customers at a time: one by one, a seed file of 100 000 customers that were all
        // there already held every start up for 8 s.
        use futures_util::StreamExt;
        let mut n = 0;
        // After a failure no more are started, but those under way finish: an upsert is several
        // store calls, and one dropped halfway could leave a customer half-written.
        let failed = std::cell::Cell::new(false);
        let mut first_error = None;
        let mut results = futures_util::stream::iter(valid)
            .map(|v| {
                let failed = &failed;
                async move {
                    if failed.get() {
                        return Ok(false);
                    }
                    let written = self.load_one(v, only_new).await;
                    if written.is_err() {
                        failed.set(true);
                    }
                    written
                }
            })
            .buffer_unordered(LOAD_CONCURRENCY);
        while let Some(result) = results.next().await {
            match result {
                Ok(written) => n += usize::from(written),
                Err(e) => first_error = first_error.or(Some(e)),
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(n),
        }
    }

    /// Writes one customer of a seed or an import; false when `only_new` and it exists already.
    async fn load_one(&self, v: ValidCustomer, only_new: bool) -> Result<bool, DirectoryError> {
        if only_new && self.get(&v.id).await?.is_some() {
            return Ok(false);
        }
        self.upsert(v).await?;
        Ok(true)
    }
}
