from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from config import api, views

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("healthz/detail", views.healthz_detail, name="healthz_detail"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    *api.urlpatterns,
    path("", include("clinic.urls")),
    path("", include("lesions.urls")),
]
