//! The built-in dashboard: `GET /` serves one page and `GET /assets/{file}` its script,
//! style sheet, icon and the vendored Chart.js, all compiled into the binary so that the
//! dashboard works on a closed network with nothing but the daemon. The page draws every
//! figure from the HTTP API (`/api/reports/*`, the drill-down API, `/metrics`); nothing
//! here reads the database. Responses carry an `ETag` and `Cache-Control: no-cache`: the
//! asset names are not versioned, so a browser must revalidate after an upgrade, and a
//! revalidation costs a 304. The Content-Security-Policy allows this origin only, so a
//! stray CDN reference fails loudly in the browser instead of silently needing internet.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use sha2::{Digest, Sha256};
use std::sync::OnceLock;

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const INDEX: Asset = Asset {
    name: "index.html",
    content_type: "text/html; charset=utf-8",
    body: include_bytes!("dashboard/index.html"),
};

/// What `/assets/{file}` serves; any other name is a 404.
const ASSETS: &[Asset] = &[
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("dashboard/app.js"),
    },
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("dashboard/app.css"),
    },
    Asset {
        name: "favicon.svg",
        content_type: "image/svg+xml",
        body: include_bytes!("dashboard/favicon.svg"),
    },
    // Chart.js 4 as published on npm (dist/chart.umd.min.js), unmodified, with its
    // licence served beside it.
    Asset {
        name: "chart.umd.min.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("dashboard/chart.umd.min.js"),
    },
    Asset {
        name: "chart.js.LICENSE.md",
        content_type: "text/plain; charset=utf-8",
        body: include_bytes!("dashboard/chart.js.LICENSE.md"),
    },
];

/// Same origin only: scripts, styles, fetches and images from the daemon, icons also as
/// `data:` URLs. Chart.js sizes its canvas through the CSSOM, which `style-src` allows.
const CSP: &str = "default-src 'self'; img-src 'self' data:; object-src 'none'; \
                   base-uri 'none'; frame-ancestors 'none'; form-action 'none'";

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(index))
        .route("/", web::head().to(index))
        .route("/assets/{file}", web::get().to(asset))
        .route("/assets/{file}", web::head().to(asset));
}

async fn index(req: HttpRequest) -> HttpResponse {
    respond(&req, &INDEX)
}

async fn asset(req: HttpRequest, file: web::Path<String>) -> HttpResponse {
    match ASSETS.iter().find(|a| a.name == file.as_str()) {
        Some(a) => respond(&req, a),
        None => HttpResponse::NotFound()
            .content_type("text/plain; charset=utf-8")
            .body(format!("no asset {:?}\n", file.as_str())),
    }
}

/// The asset, or 304 when the browser already holds this version.
fn respond(req: &HttpRequest, asset: &Asset) -> HttpResponse {
    let tag = etag(asset);
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag || t.trim() == "*"));
    let mut r = if fresh {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    r.insert_header((header::ETAG, tag))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::CONTENT_SECURITY_POLICY, CSP));
    if fresh {
        r.finish()
    } else {
        r.content_type(asset.content_type).body(asset.body)
    }
}

/// A strong tag from the content, computed once per asset.
fn etag(asset: &Asset) -> &'static str {
    static TAGS: OnceLock<Vec<(&'static str, String)>> = OnceLock::new();
    let tags = TAGS.get_or_init(|| {
        std::iter::once(&INDEX)
            .chain(ASSETS)
            .map(|a| {
                let digest = Sha256::digest(a.body);
                (a.name, format!("\"{}\"", hex::encode(&digest[..12])))
            })
            .collect()
    });
    tags.iter()
        .find(|(name, _)| *name == asset.name)
        .map(|(_, tag)| tag.as_str())
        .unwrap_or("\"\"")
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::to_bytes;
    use actix_web::http::StatusCode;
    use actix_web::test::{call_service, init_service, TestRequest};
    use actix_web::App;

    async fn get(
        path: &str,
        if_none_match: Option<&str>,
    ) -> (StatusCode, header::HeaderMap, Vec<u8>) {
        let app = init_service(App::new().configure(routes)).await;
        let mut req = TestRequest::get().uri(path);
        if let Some(tag) = if_none_match {
            req = req.insert_header((header::IF_NONE_MATCH, tag));
        }
        let res = call_service(&app, req.to_request()).await;
        let (status, headers) = (res.status(), res.headers().clone());
        let body = to_bytes(res.into_body()).await.unwrap_or_default();
        (status, headers, body.to_vec())
    }

    fn content_type(h: &header::HeaderMap) -> &str {
        h.get(header::CONTENT_TYPE).unwrap().to_str().unwrap()
    }

    #[actix_web::test]
    async fn the_page_and_every_asset_are_served_with_their_content_type_and_revalidation() {
        let (status, h, body) = get("/", None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(content_type(&h), "text/html; charset=utf-8");
        assert_eq!(h.get(header::CACHE_CONTROL).unwrap(), "no-cache");
        assert!(h.get(header::CONTENT_SECURITY_POLICY).is_some());
        assert_eq!(body, INDEX.body);
        for a in ASSETS {
            let (status, h, body) = get(&format!("/assets/{}", a.name), None).await;
            assert_eq!(status, StatusCode::OK, "{}", a.name);
            assert_eq!(content_type(&h), a.content_type, "{}", a.name);
            assert_eq!(body, a.body, "{}", a.name);
        }
    }

    #[actix_web::test]
    async fn a_browser_holding_the_current_version_gets_304_and_an_old_one_the_asset() {
        let (_, h, _) = get("/assets/app.js", None).await;
        let tag = h.get(header::ETAG).unwrap().to_str().unwrap().to_string();
        let (status, _, body) = get("/assets/app.js", Some(&tag)).await;
        assert_eq!(status, StatusCode::NOT_MODIFIED);
        assert!(body.is_empty());
        let (status, _, body) = get("/assets/app.js", Some("\"old\"")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(!body.is_empty());
        // Each file has its own tag.
        let (_, css, _) = get("/assets/app.css", None).await;
        assert_ne!(css.get(header::ETAG).unwrap().to_str().unwrap(), tag);
    }

    #[actix_web::test]
    async fn an_unknown_asset_or_a_path_outside_the_folder_is_a_404() {
        for path in [
            "/assets/nope.js",
            "/assets/..%2Fdashboard.rs",
            "/assets/",
            "/assets/index.html",
        ] {
            let (status, _, _) = get(path, None).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        }
    }

    #[test]
    fn every_asset_the_page_references_is_served() {
        let html = std::str::from_utf8(INDEX.body).unwrap();
        let mut referenced = 0;
        for part in html.split("/assets/").skip(1) {
            let name = part.split(['"', '?']).next().unwrap();
            assert!(
                ASSETS.iter().any(|a| a.name == name),
                "index.html references /assets/{name}, which is not embedded"
            );
            referenced += 1;
        }
        assert!(referenced >= 4, "only {referenced} assets referenced");
        // Nothing is fetched from elsewhere (Chart.js only names its home page in a
        // comment, and the CSP would refuse anything else anyway).
        for a in std::iter::once(&INDEX).chain(ASSETS.iter().filter(|a| a.name.starts_with("app.")))
        {
            let text = std::str::from_utf8(a.body).unwrap();
            assert!(
                !text.contains("http://") && !text.contains("https://") && !text.contains("//cdn"),
                "{} refers to another origin",
                a.name
            );
        }
    }
}
