from django.urls import path
from publishing import views

urlpatterns = [
    path("", views.article_list, name="article-list"),
    path("articles/<slug:slug>/", views.article_detail, name="article-detail"),
    path("categories/<slug:slug>/", views.category_detail, name="category-detail"),
    path("api/articles/", views.api_articles, name="api-articles"),
    path("healthz", views.healthz, name="healthz"),
]
