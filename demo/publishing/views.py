"""Views of the demo site: bounded query counts whatever the page size.

Every list page costs the same few queries, on page 1 as on page 500: one
COUNT for the paginator, one SELECT for the page (author joined in, bodies
deferred), one prefetch of the page's categories and one grouped COUNT of the
page's comments. (A correlated comment-count subquery in the page's SELECT
would also run for every row that OFFSET skips.) The "popular categories"
sidebar comes from the cache.
"""

from django.conf import settings
from django.core.cache import cache
from django.core.paginator import InvalidPage, Paginator
from django.db.models import Count, IntegerField, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.http import Http404, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.cache import cache_page
from django.views.decorators.http import require_safe

from .middleware import health_response
from .models import Article, Category, Comment

PAGE_SIZE = 20
LATEST_COMMENTS = 50
POPULAR_CATEGORIES_KEY = "popular-categories"
POPULAR_CATEGORIES_TIMEOUT = 300
POPULAR_CATEGORIES_SHOWN = 10
API_CACHE_SECONDS = 60


def with_comment_counts(queryset):
    """Annotate ``comment_count`` with a correlated subquery: for single articles."""
    counts = (
        Comment.objects.filter(article=OuterRef("pk"))
        .order_by()
        .values("article")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return queryset.annotate(
        comment_count=Coalesce(Subquery(counts, output_field=IntegerField()), 0)
    )


def article_queryset():
    """Articles for list pages: author joined, categories prefetched, no body."""
    return (
        Article.objects.select_related("author")
        .prefetch_related("categories")
        .defer("body", "author__bio")
    )


def page_of_articles(page):
    """The page's articles as a list, each with ``comment_count`` (one grouped query)."""
    articles = list(page.object_list)
    if articles:
        counts = dict(
            Comment.objects.filter(article__in=[article.id for article in articles])
            .order_by()
            .values("article")
            .annotate(n=Count("pk"))
            .values_list("article", "n")
        )
        for article in articles:
            article.comment_count = counts.get(article.id, 0)
    return articles


def popular_categories():
    """Category names with article counts, from the cache (recomputed every 5 minutes)."""

    def compute():
        rows = (
            Category.objects.annotate(article_count=Count("articles"))
            .order_by("-article_count", "name")
            .values("name", "slug", "article_count")
        )
        return list(rows[:POPULAR_CATEGORIES_SHOWN])

    return cache.get_or_set(POPULAR_CATEGORIES_KEY, compute, POPULAR_CATEGORIES_TIMEOUT)


@require_safe
def article_list(request):
    page = Paginator(article_queryset(), PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        "heading": "Latest articles",
        "page": page,
        "articles": page_of_articles(page),
        "popular_categories": popular_categories(),
    }
    return render(request, "publishing/article_list.html", context)


@require_safe
def category_detail(request, slug):
    category = get_object_or_404(Category, slug=slug)
    articles = article_queryset().filter(categories=category)
    page = Paginator(articles, PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        "heading": category.name,
        "category": category,
        "page": page,
        "articles": page_of_articles(page),
    }
    return render(request, "publishing/article_list.html", context)


@require_safe
def article_detail(request, slug):
    articles = with_comment_counts(
        Article.objects.select_related("author").prefetch_related("categories")
    )
    article = get_object_or_404(articles, slug=slug)
    comments = list(article.comments.order_by("-created_at", "-id")[:LATEST_COMMENTS])
    context = {"article": article, "comments": comments}
    return render(request, "publishing/article_detail.html", context)


def _article_json(article):
    return {
        "id": article.id,
        "title": article.title,
        "slug": article.slug,
        "author": {"name": article.author.name, "slug": article.author.slug},
        "categories": [{"name": c.name, "slug": c.slug} for c in article.categories.all()],
        "published_at": article.published_at,
        "comment_count": article.comment_count,
    }


@cache_page(API_CACHE_SECONDS)
@require_safe
def api_articles(request):
    """``/api/articles/?page=N``: one page of articles as JSON (404 past the last page)."""
    paginator = Paginator(article_queryset(), PAGE_SIZE)
    try:
        page = paginator.page(request.GET.get("page") or 1)
    except InvalidPage as exc:
        return JsonResponse({"error": str(exc)}, status=404)
    url = reverse("api-articles")
    return JsonResponse(
        {
            "count": paginator.count,
            "num_pages": paginator.num_pages,
            "page": page.number,
            "page_size": PAGE_SIZE,
            "next": f"{url}?page={page.next_page_number()}" if page.has_next() else None,
            "previous": (
                f"{url}?page={page.previous_page_number()}" if page.has_previous() else None
            ),
            "results": [_article_json(article) for article in page_of_articles(page)],
        }
    )


# --- naive mode: the patterns real apps ship, for the diagnostics report to find -----
# Served only when settings.DEMO_NAIVE is true (off by default; 404 otherwise).

NAIVE_ARCHIVE_PAGE_SIZE = 20
ARCHIVE_ORDER = ("-word_count", "-id")  # id breaks ties: a total order for keyset paging


def _naive_mode_only():
    if not getattr(settings, "DEMO_NAIVE", False):
        raise Http404("naive mode is off (DEMO_NAIVE)")


def _article_rows(articles):
    """The rows of the naive article list and of its fixed variant (the same content)."""
    return [
        {
            "title": article.title,
            "slug": article.slug,
            "author": article.author.name,
            "categories": [category.name for category in article.categories.all()],
        }
        for article in articles
    ]


@require_safe
def naive_articles(request):
    """``/naive/articles/``: the latest articles with author and categories, N+1 style.

    No select_related/prefetch_related: each row's ``article.author`` runs one query on
    the author table and ``article.categories.all()`` one on the category join, so a
    page of 20 costs 41 queries (``/naive/articles/fixed/`` costs 2).
    """
    _naive_mode_only()
    articles = Article.objects.only("id", "title", "slug", "author_id", "published_at")[
        :PAGE_SIZE
    ]
    return JsonResponse({"results": _article_rows(articles)})


@require_safe
def fixed_articles(request):
    """``/naive/articles/fixed/``: the same rows with the report's fix for the N+1: the
    author joined (select_related) and the page's categories read in one query
    (prefetch_related), 2 queries whatever the page size."""
    _naive_mode_only()
    articles = (
        Article.objects.select_related("author")
        .prefetch_related("categories")
        .only("id", "title", "slug", "author", "published_at", "author__name")[:PAGE_SIZE]
    )
    return JsonResponse({"results": _article_rows(articles)})


@require_safe
def naive_comments_by_author(request):
    """``/naive/comments/?author=NAME``: a filter on an unindexed column (a sequential
    scan of the comments table per request)."""
    _naive_mode_only()
    author_name = request.GET.get("author", "")
    comments = Comment.objects.filter(author_name=author_name).values(
        "id", "article_id", "created_at"
    )[:LATEST_COMMENTS]
    return JsonResponse({"author": author_name, "results": list(comments)})


@require_safe
def naive_archive(request):
    """``/naive/archive/?page=N``: OFFSET pagination with no bound on N, so a deep page
    reads and throws away (N-1) x 20 rows (keyset pagination is the fix)."""
    _naive_mode_only()
    try:
        page = max(1, int(request.GET.get("page") or 1))
    except ValueError:
        raise Http404("page must be a number") from None
    start = (page - 1) * NAIVE_ARCHIVE_PAGE_SIZE
    rows = Article.objects.order_by(*ARCHIVE_ORDER).values("id", "title", "word_count")[
        start : start + NAIVE_ARCHIVE_PAGE_SIZE
    ]
    return JsonResponse({"page": page, "results": list(rows)})


def _archive_key(value):
    """``?after=WORD_COUNT,ID``: the sort key of the last row of the previous page."""
    try:
        word_count, article_id = (int(part) for part in value.split(","))
    except ValueError:
        raise Http404("after must be WORD_COUNT,ID (the last row's sort key)") from None
    return word_count, article_id


@require_safe
def keyset_archive(request):
    """``/naive/archive/keyset/?after=WORD_COUNT,ID``: the archive in the same order and
    page size, paged by the last row's sort key instead of OFFSET, so a deep page reads
    only the rows after the key. ``next`` carries the key of this page's last row."""
    _naive_mode_only()
    rows = Article.objects.order_by(*ARCHIVE_ORDER)
    after = request.GET.get("after")
    if after:
        word_count, article_id = _archive_key(after)
        # (word_count, id) < (key) in the descending order, spelled out for every backend.
        rows = rows.filter(
            Q(word_count__lt=word_count) | Q(word_count=word_count, id__lt=article_id)
        )
    results = list(rows.values("id", "title", "word_count")[:NAIVE_ARCHIVE_PAGE_SIZE])
    next_url = None
    if len(results) == NAIVE_ARCHIVE_PAGE_SIZE:
        last = results[-1]
        next_url = f"{reverse('keyset-archive')}?after={last['word_count']},{last['id']}"
    return JsonResponse({"after": after, "next": next_url, "results": results})


def healthz(request):
    """Each dependency's state (HealthCheckMiddleware answers first; this serves it without)."""
    return health_response()
