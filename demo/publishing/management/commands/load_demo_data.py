"""Load a deterministic demo data set: authors, categories, articles, comments.

    manage.py load_demo_data [--authors 200] [--categories 20] [--articles 10000]
                             [--comments 50000] [--seed 42] [--batch-size 1000] [--reset]

The same seed gives the same rows (random.Random(seed), a fixed base date, no
now()). Popularity is skewed the way real sites are: a few categories, authors
and articles get most of the articles and comments. Does nothing when data is
already there, unless --reset.
"""

import random
import time
from datetime import datetime, timedelta, timezone
from itertools import accumulate

from django.core.management.base import BaseCommand, CommandError
from django.core.management.color import no_style
from django.db import connection, transaction
from django.utils.text import slugify

from publishing.models import Article, Author, Category, Comment


def _words(text):
    return tuple(text.split())


# Articles are published over the three years before this instant.
BASE_DATE = datetime(2025, 1, 1, tzinfo=timezone.utc)
PUBLISHING_SPAN = int(timedelta(days=3 * 365).total_seconds())
COMMENT_SPAN = int(timedelta(days=30).total_seconds())

WORDS = _words(
    """
access account action activity address advice agency agreement analysis answer
application approach area argument article aspect attention audience balance
basis benefit board budget building business capacity career case challenge
chance change choice city claim class client community company comparison
concept condition connection context contract control cost country course
culture customer data database debate decision demand design detail
development difference direction distance document economy edition effect
effort energy engine environment error event evidence example experience
expert factor feature field figure finance focus force forecast form future
garden goal government group growth habit health history household idea
image impact improvement income increase industry influence information
insight interest investment issue journey judgement kitchen knowledge
language layer leader lesson level library light limit list load machine
manager market material measure media memory method minute model moment
network news number object opinion option order outcome owner page pattern
performance period person picture place plan platform player point policy
position potential power practice pressure price problem process product
project property proposal quality query question range rate reader reason
record region release report request research resource response result
review risk road role rule safety sample scale schedule science screen
season section sector security server service session setting share signal
site size skill software solution source space speed staff stage standard
story strategy street structure student study subject success summer supply
support survey system table target task team technology term test theory
thing thought time tool topic trade traffic training trend update user value
version view village vision voice volume weather week window winter word
work world writer year
"""
)

ADJECTIVES = _words(
    """
active annual basic better broad careful central clear common complete
constant critical current daily direct early easy economic efficient
essential exact fair familiar fast final free full general global good great
hidden huge important key large late local long main major minor modern
natural new obvious old open original personal popular possible practical
private quick quiet rapid rare real recent regular reliable remote serious
short simple slow small smart special stable strong sudden typical useful
usual various visible weak whole wide
"""
)

FIRST_NAMES = _words(
    """
Ada Alan Alice Amara Anna Ben Carla Chen Clara Daniel Diego Elena Emma Farah
Felix Grace Hana Hugo Ines Ivan Jamal Jana Jonas Julia Kai Karin Lars Leila
Liam Lucia Maria Mateo Mina Nadia Noah Olga Omar Paula Pedro Priya Rafael Rosa
Sami Sara Tomas Uma Victor Wei Yara Zoe
"""
)

LAST_NAMES = _words(
    """
Abbott Alvarez Bauer Becker Chen Costa Dahl Dubois Eriksen Fischer Garcia
Haddad Hansen Ito Jensen Kim Kowalski Larsen Lopez Martin Meyer Moreau Nagy
Novak Okafor Olsen Park Patel Petrov Quinn Rossi Sato Schmidt Silva Smith
Tanaka Torres Varga Wagner Weber Williams Wong Yilmaz Zhang
"""
)

CATEGORY_NAMES = [
    "Technology", "Science", "Business", "Health", "Politics", "Culture", "Travel",
    "Food", "Sports", "Education", "Environment", "Finance", "Design", "Music",
    "Books", "Film", "History", "Opinion", "Local News", "World",
]  # fmt: skip


def _weights(n, exponent=1.0):
    """Cumulative Zipf-like weights: item i is chosen about 1/(i+1)**exponent as often."""
    return list(accumulate(1.0 / (i + 1) ** exponent for i in range(n)))


class TextMaker:
    """Plausible English-looking text from a small word list, driven by one RNG.

    Hot path of the loader (about 400,000 sentences for the defaults): one
    ``choices`` call per paragraph, integers from ``random()``.
    """

    VOCABULARY = WORDS * 3 + ADJECTIVES  # nouns three times as common as adjectives
    ENDINGS = ".......?!"

    def __init__(self, rng):
        self.rng = rng

    def integer(self, low, high):
        """A uniform integer in [low, high] (cheaper than randint, as deterministic)."""
        return low + int(self.rng.random() * (high - low + 1))

    def paragraph(self, low=3, high=7, words_low=6, words_high=16):
        """``low`` to ``high`` sentences of ``words_low`` to ``words_high`` words."""
        rng = self.rng
        lengths = [self.integer(words_low, words_high) for _ in range(self.integer(low, high))]
        words = rng.choices(self.VOCABULARY, k=sum(lengths))
        endings = rng.choices(self.ENDINGS, k=len(lengths))
        sentences, at = [], 0
        for length, ending in zip(lengths, endings):  # noqa: B905 (Python 3.9 hosts)
            text = " ".join(words[at : at + length])
            sentences.append(text[0].upper() + text[1:] + ending)
            at += length
        return " ".join(sentences)

    def sentence(self, low=6, high=16):
        return self.paragraph(1, 1, low, high)

    def title(self):
        rng = self.rng
        words = [rng.choice(ADJECTIVES), *rng.choices(WORDS, k=self.integer(2, 6))]
        return " ".join(words).title()


class Command(BaseCommand):
    help = "Load a deterministic demo data set (idempotent; --reset to reload)."

    def add_arguments(self, parser):
        parser.add_argument("--authors", type=int, default=200)
        parser.add_argument("--categories", type=int, default=20)
        parser.add_argument("--articles", type=int, default=10000)
        parser.add_argument("--comments", type=int, default=50000)
        parser.add_argument("--seed", type=int, default=42)
        parser.add_argument("--batch-size", type=int, default=1000)
        parser.add_argument(
            "--reset", action="store_true", help="delete the demo data first, then load"
        )

    def handle(self, *args, **options):
        for name in ("authors", "categories", "articles", "batch_size"):
            if options[name] < 1:
                raise CommandError(f"--{name.replace('_', '-')} must be at least 1")
        if options["comments"] < 0:
            raise CommandError("--comments must not be negative")

        start = time.monotonic()
        with transaction.atomic():
            if options["reset"]:
                self.reset()
            elif any(m.objects.exists() for m in (Author, Category, Article, Comment)):
                self.stdout.write(
                    f"Demo data already present ({Author.objects.count()} authors, "
                    f"{Category.objects.count()} categories, {Article.objects.count()} "
                    f"articles, {Comment.objects.count()} comments): nothing to do "
                    "(use --reset to reload)."
                )
                return
            counts = self.load(options)
        self.analyze()
        elapsed = time.monotonic() - start
        self.stdout.write(
            self.style.SUCCESS(
                "Loaded {authors} authors, {categories} categories, {articles} articles "
                "({links} article-category links), {comments} comments".format(**counts)
                + f" in {elapsed:.1f} s (seed {options['seed']})."
            )
        )

    def reset(self):
        """Empty the app's tables and restart their ids, as ``manage.py flush`` does.

        On PostgreSQL: TRUNCATE ... RESTART IDENTITY, so a reload gets the same ids.
        """
        models = (Comment, Article.categories.through, Article, Category, Author)
        rows = sum(model.objects.count() for model in models)
        tables = [model._meta.db_table for model in models]
        connection.ops.execute_sql_flush(
            connection.ops.sql_flush(no_style(), tables, reset_sequences=True)
        )
        self.stdout.write(f"Reset: deleted {rows} rows.")

    def analyze(self):
        """Fresh planner statistics for the loaded tables (autovacuum would take a while)."""
        if connection.vendor not in ("postgresql", "sqlite"):
            return
        models = (Author, Category, Article, Article.categories.through, Comment)
        with connection.cursor() as cursor:
            for model in models:
                cursor.execute(f"ANALYZE {connection.ops.quote_name(model._meta.db_table)}")

    def load(self, options):
        rng = random.Random(options["seed"])
        text = TextMaker(rng)
        batch = options["batch_size"]

        authors = []
        for i in range(options["authors"]):
            name = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
            authors.append(
                Author(name=name, slug=f"{slugify(name)}-{i + 1}", bio=text.paragraph(1, 3))
            )
        Author.objects.bulk_create(authors, batch_size=batch)

        categories = []
        for i in range(options["categories"]):
            if i < len(CATEGORY_NAMES):
                name = CATEGORY_NAMES[i]
            else:
                name = f"{CATEGORY_NAMES[i % len(CATEGORY_NAMES)]} {i // len(CATEGORY_NAMES) + 1}"
            categories.append(Category(name=name, slug=slugify(name)))
        Category.objects.bulk_create(categories, batch_size=batch)

        # Ids by slug: works whether or not the backend returns ids from bulk_create.
        author_ids = dict(Author.objects.values_list("slug", "id"))
        author_ids = [author_ids[a.slug] for a in authors]
        category_ids = dict(Category.objects.values_list("slug", "id"))
        category_ids = [category_ids[c.slug] for c in categories]

        author_weights = _weights(len(author_ids), 0.8)
        category_weights = _weights(len(category_ids), 0.9)
        articles, article_categories, published = [], [], []
        for i in range(options["articles"]):
            title = text.title()
            paragraphs = [text.paragraph() for _ in range(text.integer(3, 8))]
            body = "\n\n".join(paragraphs)
            when = BASE_DATE - timedelta(seconds=rng.randrange(PUBLISHING_SPAN))
            articles.append(
                Article(
                    author_id=rng.choices(author_ids, cum_weights=author_weights)[0],
                    title=title,
                    slug=f"{slugify(title)[:200]}-{i + 1}",
                    summary=text.sentence(12, 24),
                    body=body,
                    published_at=when,
                    word_count=len(body.split()),
                )
            )
            picked = rng.choices(category_ids, cum_weights=category_weights, k=text.integer(1, 3))
            article_categories.append(sorted(set(picked)))
            published.append(when)
        Article.objects.bulk_create(articles, batch_size=batch)

        article_ids = dict(Article.objects.values_list("slug", "id"))
        article_ids = [article_ids[a.slug] for a in articles]
        Link = Article.categories.through
        links = [
            Link(article_id=article_ids[index], category_id=category_id)
            for index, chosen in enumerate(article_categories)
            for category_id in chosen
        ]
        Link.objects.bulk_create(links, batch_size=batch)

        # Comments: most go to a few articles; each comes after its article.
        article_weights = _weights(len(article_ids), 0.7)
        order = list(range(len(article_ids)))
        rng.shuffle(order)  # popularity independent of publication date
        targets = rng.choices(order, cum_weights=article_weights, k=options["comments"])
        comments = []
        for index in targets:
            comments.append(
                Comment(
                    article_id=article_ids[index],
                    author_name=f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)[0]}.",
                    body=text.paragraph(1, 3),
                    created_at=published[index] + timedelta(seconds=rng.randrange(COMMENT_SPAN)),
                )
            )
            if len(comments) >= batch:
                Comment.objects.bulk_create(comments, batch_size=batch)
                comments = []
        Comment.objects.bulk_create(comments, batch_size=batch)

        return {
            "authors": len(authors),
            "categories": len(categories),
            "articles": len(articles),
            "links": len(links),
            "comments": options["comments"],
        }
