//! The dashboard's login: a form that takes an administrator's key and keeps it in a cookie
//! (HttpOnly: no script can read it; SameSite=Strict: no other site's page sends it; path
//! `/dashboard`: the API never sees it), so a browser can open the dashboard of a server that
//! requires keys.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::{html, DOCTYPE};
use serde::Deserialize;

use edgeway_guard::Denied;

use crate::auth::{check_key, DASHBOARD_COOKIE};
use crate::state::AppState;

/// How long the login lasts (12 hours, a shift).
const COOKIE_MAX_AGE_SECS: u32 = 12 * 3600;

/// The form's fields.
#[derive(Debug, Deserialize)]
pub struct LoginForm {
    key: String,
}

/// `GET /dashboard/login`: the form.
pub async fn login_form() -> Response {
    form_page(StatusCode::OK, None)
}

/// `POST /dashboard/login`: checks the key; an administrator's gets the cookie and the dashboard.
pub async fn login(State(state): State<AppState>, Form(submitted): Form<LoginForm>) -> Response {
    let key = submitted.key.trim().to_owned();
    match check_key(state.guard().clone(), Some(key.clone())).await {
        Ok(caller) if caller.may_view_dashboard() => {
            let cookie = format!(
                "{DASHBOARD_COOKIE}={key}; HttpOnly; SameSite=Strict; Path=/dashboard; Max-Age={COOKIE_MAX_AGE_SECS}"
            );
            ([(header::SET_COOKIE, cookie)], Redirect::to("/dashboard")).into_response()
        }
        Ok(caller) => form_page(
            StatusCode::FORBIDDEN,
            Some(format!("'{}' is not an administrator's key (edgeway keys create NAME --admin).", caller.name)),
        ),
        Err(Denied::Store(_)) => {
            form_page(StatusCode::INTERNAL_SERVER_ERROR, Some("the key check failed; try again".into()))
        }
        Err(denied) => form_page(StatusCode::UNAUTHORIZED, Some(denied.to_string())),
    }
}

/// `GET /dashboard/logout`: forgets the cookie.
pub async fn logout() -> Response {
    let cookie = format!("{DASHBOARD_COOKIE}=; HttpOnly; SameSite=Strict; Path=/dashboard; Max-Age=0");
    ([(header::SET_COOKIE, cookie)], Redirect::to("/dashboard/login")).into_response()
}

fn form_page(status: StatusCode, error: Option<String>) -> Response {
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            (super::page::head("edgeway · log in"))
            body {
                h1 { "edgeway" }
                p { "The dashboard needs an administrator's key." }
                @if let Some(error) = error { p.error { (error) } }
                form method="post" action="/dashboard/login" {
                    label for="key" { "Key " }
                    input #key type="password" name="key" autocomplete="current-password" required;
                    " "
                    button type="submit" { "Log in" }
                }
            }
        }
    };
    let mut response = super::html_response(page.into_string());
    *response.status_mut() = status;
    response
}
