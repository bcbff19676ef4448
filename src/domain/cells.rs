//! Cell reference data: which city and which of Morocco's twelve regions a cell id
//! belongs to. Cell ids look like `CASABLANCA_12` (city, underscore, sector number).
//!
//! The built-in table is the default reference; the rating catalog (a later issue)
//! carries its own cell mapping and replaces it.

/// (city as it appears in cell ids, city display name, region)
const CITIES: &[(&str, &str, &str)] = &[
    ("TANGER", "Tanger", "Tanger-Tetouan-Al Hoceima"),
    ("TETOUAN", "Tetouan", "Tanger-Tetouan-Al Hoceima"),
    ("AL_HOCEIMA", "Al Hoceima", "Tanger-Tetouan-Al Hoceima"),
    ("LARACHE", "Larache", "Tanger-Tetouan-Al Hoceima"),
    ("OUJDA", "Oujda", "Oriental"),
    ("NADOR", "Nador", "Oriental"),
    ("BERKANE", "Berkane", "Oriental"),
    ("FES", "Fes", "Fes-Meknes"),
    ("MEKNES", "Meknes", "Fes-Meknes"),
    ("TAZA", "Taza", "Fes-Meknes"),
    ("IFRANE", "Ifrane", "Fes-Meknes"),
    ("RABAT", "Rabat", "Rabat-Sale-Kenitra"),
    ("SALE", "Sale", "Rabat-Sale-Kenitra"),
    ("KENITRA", "Kenitra", "Rabat-Sale-Kenitra"),
    ("TEMARA", "Temara", "Rabat-Sale-Kenitra"),
    ("BENI_MELLAL", "Beni Mellal", "Beni Mellal-Khenifra"),
    ("KHOURIBGA", "Khouribga", "Beni Mellal-Khenifra"),
    ("KHENIFRA", "Khenifra", "Beni Mellal-Khenifra"),
    ("CASABLANCA", "Casablanca", "Casablanca-Settat"),
    ("MOHAMMEDIA", "Mohammedia", "Casablanca-Settat"),
    ("EL_JADIDA", "El Jadida", "Casablanca-Settat"),
    ("SETTAT", "Settat", "Casablanca-Settat"),
    ("MARRAKECH", "Marrakech", "Marrakech-Safi"),
    ("SAFI", "Safi", "Marrakech-Safi"),
    ("ESSAOUIRA", "Essaouira", "Marrakech-Safi"),
    ("ERRACHIDIA", "Errachidia", "Draa-Tafilalet"),
    ("OUARZAZATE", "Ouarzazate", "Draa-Tafilalet"),
    ("AGADIR", "Agadir", "Souss-Massa"),
    ("TAROUDANT", "Taroudant", "Souss-Massa"),
    ("TIZNIT", "Tiznit", "Souss-Massa"),
    ("GUELMIM", "Guelmim", "Guelmim-Oued Noun"),
    ("TAN_TAN", "Tan-Tan", "Guelmim-Oued Noun"),
    ("LAAYOUNE", "Laayoune", "Laayoune-Sakia El Hamra"),
    ("DAKHLA", "Dakhla", "Dakhla-Oued Ed-Dahab"),
];

/// Region used when a cell's city is not in the reference table. Such records are still
/// accepted: a missing reference row is the operator's data problem, not the subscriber's.
pub const UNKNOWN_REGION: &str = "unknown";

/// City and region of a cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CellLocation {
    pub city: &'static str,
    pub region: &'static str,
}

/// Look a cell id up: `CASABLANCA_12` → Casablanca, Casablanca-Settat.
pub fn locate(cell_id: &str) -> Option<CellLocation> {
    let city_key = match cell_id.rsplit_once('_') {
        Some((city, sector)) if sector.bytes().all(|b| b.is_ascii_digit()) => city,
        _ => cell_id,
    };
    CITIES
        .iter()
        .find(|(key, _, _)| key.eq_ignore_ascii_case(city_key))
        .map(|(_, city, region)| CellLocation { city, region })
}

/// The city keys cell ids are built from, for the generator.
pub fn city_keys() -> impl Iterator<Item = &'static str> {
    CITIES.iter().map(|(key, _, _)| *key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_casablanca_cell_is_in_casablanca_settat() {
        let loc = locate("CASABLANCA_12").unwrap();
        assert_eq!(loc.city, "Casablanca");
        assert_eq!(loc.region, "Casablanca-Settat");
    }

    #[test]
    fn a_city_with_an_underscore_in_its_name_is_found() {
        assert_eq!(
            locate("BENI_MELLAL_3").unwrap().region,
            "Beni Mellal-Khenifra"
        );
        assert_eq!(locate("el_jadida_7").unwrap().city, "El Jadida");
    }

    #[test]
    fn an_unknown_city_has_no_location() {
        assert_eq!(locate("ATLANTIS_1"), None);
    }

    #[test]
    fn the_table_covers_the_twelve_regions() {
        let mut regions: Vec<_> = CITIES.iter().map(|(_, _, r)| *r).collect();
        regions.sort();
        regions.dedup();
        assert_eq!(regions.len(), 12);
    }
}
