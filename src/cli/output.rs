//! Tables in the old calicoctl style, or JSON for scripts.

use comfy_table::presets::ASCII_FULL_CONDENSED;
use comfy_table::{ContentArrangement, Table};
use serde::Serialize;

use super::Format;

/// Prints rows as a table, or `json` as JSON.
pub fn print<T: Serialize>(format: Format, headers: &[&str], rows: Vec<Vec<String>>, json: &T) {
    match format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(json).expect("serializable")
        ),
        Format::Table => {
            let mut table = Table::new();
            table
                .load_style(ASCII_FULL_CONDENSED)
                .set_content_arrangement(ContentArrangement::Disabled)
                .set_header(headers.to_vec());
            for row in rows {
                table.add_row(row);
            }
            println!("{table}");
        }
    }
}

pub fn or_dash(value: Option<&str>) -> String {
    value.unwrap_or("-").to_string()
}
