from django.apps import AppConfig


class ClinicConfig(AppConfig):
    name = "clinic"
    verbose_name = "Clinics and patients"

    def ready(self) -> None:
        from django.contrib.auth import signals as auth_signals

        from clinic import receivers

        auth_signals.user_logged_in.connect(receivers.record_login, dispatch_uid="audit-login")
        auth_signals.user_logged_in.connect(receivers.start_idle_clock, dispatch_uid="idle-clock-at-login")
        auth_signals.user_logged_out.connect(receivers.record_logout, dispatch_uid="audit-logout")
        auth_signals.user_login_failed.connect(receivers.record_login_failure, dispatch_uid="audit-login-failed")
