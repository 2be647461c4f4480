from django.apps import AppConfig


class LesionsConfig(AppConfig):
    name = "lesions"
    verbose_name = "Lesions, captures and analyses"

    def ready(self) -> None:
        from clinic.models import Patient
        from clinic.signals import patient_deleting
        from lesions.services import delete_files_of_patient

        patient_deleting.connect(delete_files_of_patient, sender=Patient, dispatch_uid="lesions-patient-files")
