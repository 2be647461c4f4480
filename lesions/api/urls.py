from django.urls import path

from lesions.api import views

urlpatterns = [
    path("patients/<int:pk>/lesions/", views.PatientLesions.as_view(), name="patient-lesions"),
    path("lesions/<int:pk>/", views.LesionDetail.as_view(), name="lesion-detail"),
    path("lesions/<int:pk>/captures/", views.LesionCaptures.as_view(), name="lesion-captures"),
    path("lesions/<int:pk>/histopathology/", views.LesionHistopathology.as_view(), name="lesion-histopathology"),
    path("captures/<int:pk>/", views.CaptureDetail.as_view(), name="capture-detail"),
    path("captures/<int:pk>/analyses/", views.CaptureAnalyses.as_view(), name="capture-analyses"),
    path("captures/<int:pk>/dicom/", views.CaptureDicom.as_view(), name="capture-dicom"),
    path("captures/<int:pk>/overlay/dicom/", views.OverlayDicom.as_view(), name="capture-overlay-dicom"),
    path("analyses/<int:pk>/", views.AnalysisDetail.as_view(), name="analysis-detail"),
]
