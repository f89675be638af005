from django.db import models


class Author(models.Model):
    name = models.CharField(max_length=120)
    slug = models.SlugField(max_length=140, unique=True)
    bio = models.TextField(blank=True)

    class Meta:
        ordering = ("name",)

    def __str__(self):
        return self.name


class Category(models.Model):
    name = models.CharField(max_length=80, unique=True)
    slug = models.SlugField(max_length=100, unique=True)

    class Meta:
        ordering = ("name",)
        verbose_name_plural = "categories"

    def __str__(self):
        return self.name


class Article(models.Model):
    author = models.ForeignKey(Author, on_delete=models.CASCADE, related_name="articles")
    categories = models.ManyToManyField(Category, related_name="articles")
    title = models.CharField(max_length=200)
    slug = models.SlugField(max_length=220, unique=True)
    summary = models.TextField()
    body = models.TextField()
    published_at = models.DateTimeField()
    word_count = models.PositiveIntegerField(default=0)

    class Meta:
        # Newest first; id breaks ties so that pages are stable.
        ordering = ("-published_at", "-id")
        indexes = (
            # Serves the list pages (ORDER BY published_at DESC, id DESC LIMIT 20)
            # and any filter on published_at.
            models.Index(fields=["-published_at", "-id"], name="article_published_idx"),
        )

    def __str__(self):
        return self.title


class Comment(models.Model):
    # No index of its own: comment_article_created_idx below starts with article_id and
    # serves both the foreign key and "latest comments of an article".
    article = models.ForeignKey(
        Article, on_delete=models.CASCADE, related_name="comments", db_index=False
    )
    author_name = models.CharField(max_length=120)
    body = models.TextField()
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ("-created_at", "-id")
        indexes = (
            models.Index(
                fields=["article", "-created_at", "-id"], name="comment_article_created_idx"
            ),
        )

    def __str__(self):
        return f"{self.author_name} on {self.article_id}"
