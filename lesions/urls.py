from django.urls import path

from lesions import views

urlpatterns = [
    path("", views.worklist, name="worklist"),
    path("recalls.csv", views.recall_export, name="recall_export"),
    path("analyses/<int:pk>/retry/", views.analysis_retry, name="analysis_retry"),
    path("patients/<int:pk>/", views.patient_detail, name="patient_detail"),
    path("patients/<int:pk>/summary/", views.patient_summary, name="patient_summary"),
    path("patients/<int:patient_pk>/lesions/new/", views.lesion_create, name="lesion_create"),
    path("lesions/<int:pk>/", views.lesion_case, name="lesion_case"),
    path("lesions/<int:pk>/edit/", views.lesion_edit, name="lesion_edit"),
    path("lesions/<int:pk>/report/", views.lesion_report, name="lesion_report"),
    path("lesions/<int:pk>/compare/", views.lesion_compare, name="lesion_compare"),
    path("lesions/<int:pk>/captures/", views.capture_upload, name="lesion_upload"),
    path("lesions/<int:pk>/webcam/", views.webcam_capture, name="lesion_webcam"),
    path("lesions/<int:pk>/assessment/", views.lesion_assessment, name="lesion_assessment"),
    path("lesions/<int:pk>/histopathology/", views.lesion_histopathology, name="lesion_histopathology"),
    path("lesions/<int:pk>/statuses.json", views.lesion_statuses, name="lesion_statuses"),
    path("captures/<int:pk>/card/", views.capture_card, name="capture_card"),
    path("captures/<int:pk>/structures/", views.capture_structures, name="capture_structures"),
    path("captures/<int:pk>/image/<str:kind>/", views.capture_image, name="capture_image"),
    path("captures/<int:pk>/dicom/<str:kind>/", views.capture_dicom, name="capture_dicom"),
]
