from django.urls import path
from publishing import views

urlpatterns = [
    path("", views.article_list, name="article-list"),
    path("articles/<slug:slug>/", views.article_detail, name="article-detail"),
    path("categories/<slug:slug>/", views.category_detail, name="category-detail"),
    path("api/articles/", views.api_articles, name="api-articles"),
    # Naive mode (settings.DEMO_NAIVE): 404 unless it is on.
    path("naive/articles/", views.naive_articles, name="naive-articles"),
    path("naive/articles/fixed/", views.fixed_articles, name="fixed-articles"),
    path("naive/comments/", views.naive_comments_by_author, name="naive-comments"),
    path("naive/archive/", views.naive_archive, name="naive-archive"),
    path("naive/archive/keyset/", views.keyset_archive, name="keyset-archive"),
    path("healthz", views.healthz, name="healthz"),
]
