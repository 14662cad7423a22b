//! Friendly names for SKUs and service plans.
//!
//! The built-in catalog is a compact form of Microsoft's "Product names and service plan
//! identifiers for licensing" CSV (`data/catalog.tsv`, regenerated with
//! `cargo run -p m365-connector --example compact-catalog -- <csv>`). A user can override it
//! with a newer copy of Microsoft's CSV through the `catalog_csv` configuration field.

use std::collections::HashMap;

const BUILTIN: &str = include_str!("../data/catalog.tsv");

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkuName {
    pub part_number: String,
    pub product_name: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanName {
    pub name: String,
    pub friendly_name: String,
}

#[derive(Debug, Default, Clone)]
pub struct Catalog {
    /// Keyed by lower-case SKU GUID.
    skus: HashMap<String, SkuName>,
    /// Keyed by lower-case service plan GUID.
    plans: HashMap<String, PlanName>,
}

impl Catalog {
    pub fn builtin() -> Catalog {
        let mut catalog = Catalog::default();
        for line in BUILTIN
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let mut parts = line.splitn(4, '\t');
            let (Some(kind), Some(id), Some(a), Some(b)) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            match kind {
                "S" => catalog.add_sku(id, a, b),
                "P" => catalog.add_plan(id, a, b),
                _ => {}
            }
        }
        catalog
    }

    /// Parses Microsoft's CSV. Columns are found by header name (trimmed, spaces ignored, so the
    /// 2022 `String_ Id` spelling works), a UTF-8 BOM is skipped, and `;`-delimited re-saves
    /// are accepted.
    pub fn from_microsoft_csv(text: &str) -> Result<Catalog, String> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let header_line = text.lines().next().unwrap_or("");
        let delimiter = if !header_line.contains(',') && header_line.contains(';') {
            b';'
        } else {
            b','
        };
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(delimiter)
            .flexible(true)
            .from_reader(text.as_bytes());
        let headers = reader
            .headers()
            .map_err(|e| format!("cannot read the header row: {e}"))?
            .clone();
        let column = |name: &str| {
            headers
                .iter()
                .position(|h| h.replace(' ', "").eq_ignore_ascii_case(name))
                .ok_or_else(|| {
                    format!(
                        "column {name} is missing (found: {})",
                        headers.iter().collect::<Vec<_>>().join(", ")
                    )
                })
        };
        let product = column("Product_Display_Name")?;
        let string_id = column("String_Id")?;
        let guid = column("GUID")?;
        let plan_name = column("Service_Plan_Name")?;
        let plan_id = column("Service_Plan_Id")?;
        let plan_friendly = column("Service_Plans_Included_Friendly_Names")?;
        let mut catalog = Catalog::default();
        for (i, row) in reader.records().enumerate() {
            let row = row.map_err(|e| format!("row {}: {e}", i + 2))?;
            let get = |c: usize| row.get(c).unwrap_or("").trim();
            if !get(guid).is_empty() {
                catalog.add_sku(get(guid), get(string_id), get(product));
            }
            if !get(plan_id).is_empty() {
                catalog.add_plan(get(plan_id), get(plan_name), get(plan_friendly));
            }
        }
        if catalog.skus.is_empty() {
            return Err("the CSV has no product rows".into());
        }
        Ok(catalog)
    }

    fn add_sku(&mut self, id: &str, part_number: &str, product_name: &str) {
        self.skus
            .entry(id.to_ascii_lowercase())
            .or_insert_with(|| SkuName {
                part_number: part_number.to_string(),
                product_name: product_name.to_string(),
            });
    }

    fn add_plan(&mut self, id: &str, name: &str, friendly_name: &str) {
        self.plans
            .entry(id.to_ascii_lowercase())
            .or_insert_with(|| PlanName {
                name: name.to_string(),
                friendly_name: friendly_name.to_string(),
            });
    }

    /// Entries of `newer` replace this catalog's; the rest stay.
    pub fn overlay(&mut self, newer: Catalog) {
        self.skus.extend(newer.skus);
        self.plans.extend(newer.plans);
    }

    pub fn sku(&self, sku_id: &str) -> Option<&SkuName> {
        self.skus.get(&sku_id.to_ascii_lowercase())
    }

    pub fn plan(&self, plan_id: &str) -> Option<&PlanName> {
        self.plans.get(&plan_id.to_ascii_lowercase())
    }

    pub fn len(&self) -> (usize, usize) {
        (self.skus.len(), self.plans.len())
    }

    /// The compact form stored as `data/catalog.tsv`, sorted for stable diffs.
    pub fn to_compact(&self) -> String {
        let clean = |s: &str| s.replace(['\t', '\n', '\r'], " ");
        let mut skus: Vec<_> = self.skus.iter().collect();
        skus.sort_by(|a, b| a.1.part_number.cmp(&b.1.part_number).then(a.0.cmp(b.0)));
        let mut plans: Vec<_> = self.plans.iter().collect();
        plans.sort_by(|a, b| a.1.name.cmp(&b.1.name).then(a.0.cmp(b.0)));
        let mut out = String::from(
            "# SKU and service plan names from Microsoft's \"Product names and service plan identifiers for licensing\" CSV.\n\
             # S<TAB>skuId<TAB>String_Id<TAB>Product_Display_Name / P<TAB>servicePlanId<TAB>Service_Plan_Name<TAB>friendly name\n",
        );
        for (id, s) in skus {
            out.push_str(&format!(
                "S\t{id}\t{}\t{}\n",
                clean(&s.part_number),
                clean(&s.product_name)
            ));
        }
        for (id, p) in plans {
            out.push_str(&format!(
                "P\t{id}\t{}\t{}\n",
                clean(&p.name),
                clean(&p.friendly_name)
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_knows_common_skus_and_plans() {
        let c = Catalog::builtin();
        let e5 = c
            .sku("06EBC4EE-1BB5-47DD-8120-11324BC54E06")
            .expect("Microsoft 365 E5");
        assert_eq!(e5.part_number, "SPE_E5");
        assert_eq!(e5.product_name, "Microsoft 365 E5");
        let exchange = c
            .plan("efb87545-963c-4e0d-99df-69c6916d9eb0")
            .expect("EXCHANGE_S_ENTERPRISE");
        assert_eq!(exchange.name, "EXCHANGE_S_ENTERPRISE");
        assert!(c.len().0 > 500, "{:?}", c.len());
    }

    #[test]
    fn parses_microsoft_csv_variants() {
        let standard = "\u{feff}Product_Display_Name,String_Id,GUID,Service_Plan_Name,Service_Plan_Id,Service_Plans_Included_Friendly_Names\r\n\
            \"Contoso Suite, Plus\",CONTOSO_PLUS,11111111-1111-1111-1111-111111111111,PLAN_A,22222222-2222-2222-2222-222222222222,Plan A\r\n";
        let c = Catalog::from_microsoft_csv(standard).unwrap();
        assert_eq!(
            c.sku("11111111-1111-1111-1111-111111111111")
                .unwrap()
                .product_name,
            "Contoso Suite, Plus"
        );
        assert_eq!(
            c.plan("22222222-2222-2222-2222-222222222222")
                .unwrap()
                .friendly_name,
            "Plan A"
        );

        let old = "Product_Display_Name;String_ Id;GUID;Service_Plan_Name;Service_Plan_Id;Service_Plans_Included_Friendly_Names\n\
            Old;OLD;33333333-3333-3333-3333-333333333333;P;44444444-4444-4444-4444-444444444444;P friendly\n";
        let c = Catalog::from_microsoft_csv(old).unwrap();
        assert_eq!(
            c.sku("33333333-3333-3333-3333-333333333333")
                .unwrap()
                .part_number,
            "OLD"
        );

        let err = Catalog::from_microsoft_csv("a,b\n1,2\n").unwrap_err();
        assert!(err.contains("Product_Display_Name"), "{err}");
    }

    #[test]
    fn overlay_replaces_and_keeps() {
        let mut c = Catalog::builtin();
        let newer = "Product_Display_Name,String_Id,GUID,Service_Plan_Name,Service_Plan_Id,Service_Plans_Included_Friendly_Names\n\
            Renamed E5,SPE_E5,06ebc4ee-1bb5-47dd-8120-11324bc54e06,X,55555555-5555-5555-5555-555555555555,X\n";
        c.overlay(Catalog::from_microsoft_csv(newer).unwrap());
        assert_eq!(
            c.sku("06ebc4ee-1bb5-47dd-8120-11324bc54e06")
                .unwrap()
                .product_name,
            "Renamed E5"
        );
        assert!(c.plan("efb87545-963c-4e0d-99df-69c6916d9eb0").is_some());
    }

    #[test]
    fn compact_round_trips() {
        let c = Catalog::builtin();
        let text = c.to_compact();
        assert_eq!(
            text, BUILTIN,
            "data/catalog.tsv is not in canonical form; regenerate it"
        );
    }
}
