//! The API's part of the OpenAPI document at `GET /api/openapi.json`, generated from the
//! handlers' annotations and the `zlh_proto` types they use.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(title = "ZeroLagHub API", description = "Game servers and dev containers. Errors are {\"error\": {\"code\", \"message\"}}."),
    paths(
        super::auth::registration,
        super::auth::register,
        super::auth::verify_email,
        super::auth::login,
        super::auth::refresh,
        super::auth::logout,
        super::auth::me,
        super::auth::activity,
        super::auth::api_keys,
        super::auth::create_api_key,
        super::auth::revoke_api_key,
        super::auth::change_password,
        super::two_factor::status,
        super::two_factor::begin,
        super::two_factor::confirm,
        super::two_factor::recovery_codes,
        super::two_factor::disable,
        super::auth::request_reset,
        super::auth::confirm_reset,
        super::servers::templates,
        super::servers::list,
        super::servers::create,
        super::servers::get,
        super::servers::delete,
        super::servers::status,
        super::servers::activity,
        super::servers::limits,
        super::servers::start,
        super::servers::stop,
        super::servers::restart,
        super::servers::kill,
        super::servers::crashes,
        super::members::list,
        super::members::invite,
        super::members::change,
        super::members::remove,
        super::schedules::list,
        super::schedules::create,
        super::schedules::replace,
        super::schedules::remove,
        super::schedules::run_now,
        super::admin::create_user,
        super::admin::change_role,
        super::admin::delete_user,
        super::templates::list,
        super::templates::show,
        super::templates::put,
        super::templates::remove,
        super::templates::restore,
        super::templates::import,
        super::setup::variables,
        super::setup::set_variables,
        super::setup::install,
        super::setup::reinstall,
        super::servers::console_command,
        super::console::ticket,
        super::console::socket,
        super::dev::runtimes,
        super::dev::code_server_start,
        super::dev::code_server_stop,
        super::dev::code_server_restart,
        super::data::backups,
        super::data::backup_create,
        super::data::backup_restore,
        super::data::backup_delete,
        super::data::backup_change,
        super::data::backup_link,
        super::data::backup_download,
        super::data::files,
        super::data::file_delete,
        super::data::file_download,
        super::data::file_upload,
        super::data::file_mkdir,
        super::data::file_rename,
        super::data::file_copy,
        super::data::file_chmod,
        super::data::file_compress,
        super::data::file_extract,
        super::data::mods,
        super::data::mod_install,
        super::data::mod_upload,
        super::data::mod_enable,
        super::data::mod_disable,
        super::data::mod_remove,
        super::data::jobs,
        super::data::job,
        super::admin::users,
        super::artifacts::list,
        super::artifacts::put,
        super::artifacts::remove,
        super::admin::suspend,
        super::admin::unsuspend,
        super::admin::activity,
        super::admin::reset_two_factor,
        super::admin::settings,
        super::admin::change_settings,
    ),
    components(schemas(zlh_proto::api::CookieSession)),
    modifiers(&BearerToken)
)]
struct ApiDoc;

struct BearerToken;

impl Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build(),
            ),
        );
    }
}

/// The API's part of the document (`http` adds the IDE's routes and serves it).
pub(crate) fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}
