"""A believable retail world, generated deterministically from a seed.

``generate_demo`` returns the three frames of the generic dataset format
(items, customers, events) for a grocery store with about six months of
history. The world is built so that a recommender has real signal to learn and
a fairness audit has something meaningful to measure:

- a catalog of categories, product types, brands (one is the store's private
  label, "Clearshelf Basics"), price tiers, titles and one-sentence
  descriptions whose vocabulary is shared within a category and a type;
- customer segments with distinct tastes (category preferences, price
  sensitivity, brand loyalty, private-label and organic affinity, basket size,
  visit frequency); the sensitive attributes (age band, region, gender) are
  correlated with segment only moderately, so every group is a mixture of
  structured tastes and none is noise;
- visits with baskets: staples bought again at a personal interval, discovery
  of other items by taste and popularity, complementary items bought together
  (pasta and pasta sauce, cereal and milk), seasonal and trending demand, item
  launches during the window (a few in the last two weeks, barely seen);
- views and carts around purchases, and browsing that ends without a purchase.

Nothing here reads the environment or the disk except ``write_demo``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Final, Literal

import numpy as np
import numpy.typing as npt
import polars as pl

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

PRIVATE_LABEL: Final = "Clearshelf Basics"
SENSITIVE_ATTRIBUTES: Final[tuple[str, ...]] = ("age_band", "region", "gender")
AGE_BANDS: Final[tuple[str, ...]] = ("18-24", "25-34", "35-44", "45-54", "55-64", "65+")
REGIONS: Final[tuple[str, ...]] = ("North", "South", "East", "West")
GENDERS: Final[tuple[str, ...]] = ("female", "male", "nonbinary")
GENDER_SHARES: Final[tuple[float, ...]] = (0.50, 0.47, 0.03)
PRICE_TIERS: Final[tuple[str, ...]] = ("value", "standard", "premium")
EVENT_TYPE_CODES: Final[tuple[str, ...]] = ("view", "cart", "purchase")

# Share of customers whose value of each sensitive attribute is unknown (null).
MISSING_SHARE: Final = 0.05
# Share of items launched during the window, and in its last two weeks.
LATE_LAUNCH_SHARE: Final = 0.17
COLD_LAUNCH_SHARE: Final = 0.03
COLD_WINDOW_DAYS: Final = 14

_SECONDS_PER_DAY: Final = 86_400
_TIER_PRICE: Final = (0.72, 1.0, 1.45)
_ORGANIC_PRICE: Final = 1.22
_WEEKDAY_TRAFFIC: Final = (1.0, 0.9, 0.95, 1.0, 1.15, 1.35, 1.2)  # Monday first


# --------------------------------------------------------------------------- config


@dataclass(frozen=True)
class DemoConfig:
    """How big a world to generate, over which dates, from which seed.

    ``categories`` takes the first that many built-in categories (at most
    ``len(CATEGORIES)``); ``start`` is the ISO date (UTC) of day 0 and events
    fall in ``[start, start + days)``.
    """

    customers: int = 2000
    items: int = 500
    categories: int = 12
    days: int = 182
    start: str = "2026-05-01"
    seed: int = 42


@dataclass(frozen=True, eq=False)
class DemoData:
    """The generated world in the generic dataset format.

    - ``items``: one row per item; ``item_id`` (str), ``title``,
      ``description``, ``category``, ``brand``, ``price`` (float64),
      ``price_tier`` ("value" | "standard" | "premium"), ``private_label``
      (bool), ``launch_day`` (int64, days after ``start`` before which the item
      has no events).
    - ``customers``: one row per customer; ``customer_id`` ("C00001"...),
      ``age_band``, ``region``, ``gender`` (sensitive, each null for about 5%
      of customers) and ``segment`` (not sensitive).
    - ``events``: one row per event, sorted by time; ``event_id`` (unique,
      "E00000001"...), ``customer_id``, ``item_id``, ``event_type`` ("view" |
      "cart" | "purchase"), ``timestamp`` (ISO-8601 UTC, "2026-05-03T14:22:05Z"),
      ``value`` (float64: the quantity for a purchase, 1.0 otherwise).
    - ``sensitive``: the customer columns that are audit-only.

    Compare two worlds frame by frame with ``DataFrame.equals``.
    """

    items: pl.DataFrame
    customers: pl.DataFrame
    events: pl.DataFrame
    sensitive: tuple[str, ...] = SENSITIVE_ATTRIBUTES


# --------------------------------------------------------------------------- vocabulary


@dataclass(frozen=True)
class ProductType:
    """A kind of product; items are variants x sizes x brands of it.

    ``key`` names the type (unique across categories, used for complements);
    an item's title is ``"{variant} {noun} {size}"``. ``interval`` is the
    typical number of days between repeat purchases of a staple (``None``:
    not a staple). ``season`` is ``(amplitude, peak day of year)`` of a
    yearly demand cycle on a log scale.
    """

    key: str
    noun: str
    variants: tuple[str, ...]
    sizes: tuple[tuple[str, float], ...]
    price: float
    interval: float | None
    blurb: str
    season: tuple[float, float] | None = None


@dataclass(frozen=True)
class Category:
    """A store category with its brands (name, tier index into ``PRICE_TIERS``)."""

    name: str
    aisle: str
    brands: tuple[tuple[str, int], ...]
    types: tuple[ProductType, ...]
    share: float = 1.0
    season: tuple[float, float] | None = None


def _t(
    key: str,
    noun: str,
    variants: tuple[str, ...],
    sizes: tuple[tuple[str, float], ...],
    price: float,
    interval: float | None,
    blurb: str,
    season: tuple[float, float] | None = None,
) -> ProductType:
    return ProductType(key, noun, variants, sizes, price, interval, blurb, season)


CATEGORIES: Final[tuple[Category, ...]] = (
    Category(
        "Dairy",
        "the chilled dairy aisle",
        (("Meadowfield", 1), ("Alpine Valley", 2), ("Daisy Hill", 1),
         ("Green Pasture", 2), (PRIVATE_LABEL, 0)),
        (
            _t("Milk", "Milk",
               ("Whole", "Semi-Skimmed", "Skimmed", "Organic Whole", "Lactose-Free"),
               (("1L", 1.0), ("2L", 1.75), ("500ml", 0.6)), 1.10, 6,
               "fresh and creamy milk for cereal, tea and coffee"),
            _t("Yogurt", "Yogurt",
               ("Greek", "Natural", "Strawberry", "Vanilla", "Organic Natural"),
               (("500g", 1.0), ("4x125g", 1.1), ("1kg", 1.8)), 1.60, 9,
               "smooth and tangy yogurt for breakfast bowls and snacks"),
            _t("Cheddar", "Cheddar",
               ("Mature", "Mild", "Extra Mature", "Organic Mature", "Smoked"),
               (("200g", 1.0), ("400g", 1.8)), 2.40, 16,
               "a rich cheese block for sandwiches, toasties and cooking"),
            _t("Butter", "Butter",
               ("Salted", "Unsalted", "Organic Salted", "Spreadable"),
               (("250g", 1.0), ("500g", 1.85)), 2.10, 14,
               "golden creamy butter for toast and baking"),
            _t("Eggs", "Eggs",
               ("Free Range", "Organic Free Range", "Large Free Range", "Barn"),
               (("6 pack", 1.0), ("12 pack", 1.85)), 1.90, 8,
               "farm-fresh eggs for breakfasts and baking"),
            _t("Cream", "Cream",
               ("Double", "Single", "Sour", "Whipping", "Organic Double"),
               (("300ml", 1.0), ("600ml", 1.8)), 1.30, None,
               "thick dairy cream for desserts, sauces and berries"),
        ),
        share=1.0,
    ),
    Category(
        "Bakery",
        "the in-store bakery",
        (("Hearthstone", 1), ("Old Mill", 1), ("Artisan Rise", 2), (PRIVATE_LABEL, 0)),
        (
            _t("Loaf", "Loaf",
               ("Sourdough", "Wholemeal", "White Sliced", "Seeded", "Rye"),
               (("800g", 1.0), ("400g", 0.6)), 1.40, 5,
               "bread baked daily for sandwiches and toast"),
            _t("Rolls", "Rolls",
               ("Brioche Burger", "Crusty White", "Wholemeal", "Seeded", "Hot Dog"),
               (("4 pack", 1.0), ("6 pack", 1.4)), 1.20, None,
               "soft bread rolls for burgers, lunches and barbecues", (0.4, 200)),
            _t("Croissants", "Croissants",
               ("All-Butter", "Almond", "Chocolate", "Wholemeal"),
               (("4 pack", 1.0), ("2 pack", 0.6)), 1.80, None,
               "flaky pastries for a weekend breakfast"),
            _t("Bagels", "Bagels",
               ("Plain", "Sesame", "Cinnamon & Raisin", "Everything"),
               (("5 pack", 1.0),), 1.50, 12,
               "chewy bread rings for toasting at breakfast"),
            _t("Wraps", "Tortilla Wraps",
               ("Plain", "Wholemeal", "Seeded", "Gluten-Free"),
               (("8 pack", 1.0), ("6 pack", 0.8)), 1.30, None,
               "soft flatbread wraps for lunches and fajitas"),
            _t("Cake", "Cake",
               ("Lemon Drizzle", "Chocolate Fudge", "Victoria Sponge", "Carrot"),
               (("400g", 1.0),), 2.80, None,
               "a sweet bake to share with a cup of tea", (0.3, 355)),
        ),
        share=0.9,
        season=(0.1, 330),
    ),
    Category(
        "Produce",
        "the fresh fruit and vegetable aisle",
        (("Orchard Gate", 1), ("Sunny Fields", 1), ("Evergreen Organic", 2),
         (PRIVATE_LABEL, 0)),
        (
            _t("Bananas", "Bananas",
               ("Fairtrade", "Organic Fairtrade", "Ripe & Ready", "Loose"),
               (("5 pack", 1.0), ("1kg", 1.2)), 1.00, 5,
               "sweet fruit for lunchboxes, smoothies and snacks"),
            _t("Apples", "Apples",
               ("Gala", "Pink Lady", "Braeburn", "Organic Gala", "Granny Smith"),
               (("6 pack", 1.0), ("1kg", 1.3)), 1.80, 8,
               "crisp and juicy fruit for snacking and lunchboxes", (0.3, 280)),
            _t("Salad Leaves", "Salad",
               ("Mixed Leaf", "Baby Spinach", "Rocket", "Organic Mixed Leaf", "Iceberg"),
               (("120g", 1.0), ("200g", 1.5)), 1.20, 6,
               "washed salad greens ready for bowls and sandwiches", (0.4, 195)),
            _t("Tomatoes", "Tomatoes",
               ("Cherry", "Vine", "Plum", "Organic Cherry", "Beef"),
               (("250g", 1.0), ("500g", 1.8)), 1.30, 7,
               "ripe and sweet vegetables for salads and sauces"),
            _t("Potatoes", "Potatoes",
               ("Baby", "Maris Piper", "Sweet", "Organic White", "Baking"),
               (("1kg", 1.0), ("2.5kg", 2.0)), 1.20, 12,
               "versatile vegetables for roasting, mashing and baking"),
            _t("Avocados", "Avocados",
               ("Ripe & Ready", "Hass", "Organic Hass"),
               (("2 pack", 1.0), ("4 pack", 1.8)), 1.70, None,
               "creamy fruit for toast, salads and guacamole"),
            _t("Strawberries", "Strawberries",
               ("British", "Organic", "Sweet Eve"),
               (("400g", 1.0), ("227g", 0.6)), 2.20, None,
               "juicy summer fruit for desserts with cream", (0.9, 185)),
        ),
        share=1.1,
        season=(0.15, 195),
    ),
    Category(
        "Meat & Fish",
        "the butcher and fishmonger counter",
        (("Highland Butchers", 2), ("Farmstead", 1), ("Ocean Catch", 1),
         ("Coastline Finest", 2), (PRIVATE_LABEL, 0)),
        (
            _t("Chicken Breast", "Chicken Breast Fillets",
               ("Free Range", "Organic", "British", "Corn-Fed"),
               (("300g", 1.0), ("600g", 1.85)), 3.20, 9,
               "lean chicken for stir-fries, salads and roasts"),
            _t("Beef Mince", "Beef Mince",
               ("Lean", "Organic Lean", "Steak", "5% Fat"),
               (("500g", 1.0), ("750g", 1.45)), 3.40, 11,
               "minced beef for bolognese, chilli and burgers"),
            _t("Beef Burgers", "Beef Burgers",
               ("Quarter Pounder", "Aberdeen Angus", "Classic", "Wagyu"),
               (("4 pack", 1.0), ("2 pack", 0.6)), 3.00, None,
               "juicy beef patties for the grill and barbecue", (0.6, 200)),
            _t("Salmon", "Salmon Fillets",
               ("Scottish", "Wild Alaskan", "Smoked", "Organic"),
               (("240g", 1.0), ("480g", 1.85)), 4.20, None,
               "rich omega-3 fish for quick dinners"),
            _t("Sausages", "Sausages",
               ("Pork", "Cumberland", "Chicken", "Pork & Apple", "Vegetarian"),
               (("6 pack", 1.0), ("12 pack", 1.8)), 2.50, None,
               "meaty sausages for breakfasts, mash and barbecues", (0.35, 200)),
            _t("Bacon", "Bacon",
               ("Smoked Back", "Unsmoked Back", "Streaky", "Dry-Cured"),
               (("300g", 1.0),), 2.60, 14,
               "crispy bacon rashers for breakfast sandwiches"),
        ),
        share=0.9,
        season=(0.1, 200),
    ),
    Category(
        "Pantry",
        "the store-cupboard aisle",
        (("Casa Roma", 1), ("Golden Grain", 1), ("Spice Route", 2), ("Harvest Table", 1),
         (PRIVATE_LABEL, 0)),
        (
            _t("Pasta", "Pasta",
               ("Penne", "Fusilli", "Spaghetti", "Wholewheat Penne", "Organic Fusilli"),
               (("500g", 1.0), ("1kg", 1.8)), 0.95, 14,
               "durum wheat pasta for quick weeknight dinners"),
            _t("Pasta Sauce", "Pasta Sauce",
               ("Tomato & Basil", "Arrabbiata", "Bolognese", "Organic Tomato", "Four Cheese"),
               (("500g", 1.0), ("350g", 0.75)), 1.60, None,
               "a rich tomato sauce to stir through pasta"),
            _t("Rice", "Rice",
               ("Basmati", "Long Grain", "Brown", "Jasmine", "Organic Basmati"),
               (("1kg", 1.0), ("500g", 0.6)), 1.70, 20,
               "fluffy rice grains for curries and stir-fries"),
            _t("Cereal", "Cereal",
               ("Corn Flake", "Honey Granola", "Bran Flake", "Oat Porridge", "Organic Muesli",
                "Chocolate Hoop"),
               (("500g", 1.0), ("750g", 1.4)), 2.30, 12,
               "a crunchy breakfast cereal to enjoy with cold milk"),
            _t("Chopped Tomatoes", "Chopped Tomatoes",
               ("Italian", "Organic", "Garlic", "Herb"),
               (("400g", 1.0), ("4x400g", 3.6)), 0.60, 14,
               "tinned tomatoes for sauces, soups and stews"),
            _t("Olive Oil", "Olive Oil",
               ("Extra Virgin", "Light", "Organic Extra Virgin", "Greek Extra Virgin"),
               (("500ml", 1.0), ("1L", 1.8)), 4.00, None,
               "cooking oil for dressings, roasting and frying"),
            _t("Curry Sauce", "Curry Sauce",
               ("Tikka Masala", "Korma", "Jalfrezi", "Thai Green", "Madras"),
               (("450g", 1.0),), 1.70, None,
               "a ready-made sauce for an easy curry night with rice"),
        ),
        share=1.2,
        season=(0.15, 300),
    ),
    Category(
        "Snacks",
        "the snacks and treats aisle",
        (("Crunch Co", 1), ("Hillside Kitchen", 2), ("SnackJack", 1), (PRIVATE_LABEL, 0)),
        (
            _t("Crisps", "Crisps",
               ("Sea Salt", "Salt & Vinegar", "Cheese & Onion", "Sour Cream & Chive",
                "Sea Salt & Black Pepper"),
               (("150g", 1.0), ("6x25g", 1.1)), 1.40, None,
               "crunchy potato crisps for lunchboxes and parties"),
            _t("Tortilla Chips", "Tortilla Chips",
               ("Lightly Salted", "Chilli", "Cool Flavour", "Organic Blue Corn"),
               (("200g", 1.0),), 1.30, None,
               "crunchy corn chips for dipping and nachos"),
            _t("Dip", "Dip",
               ("Tomato Salsa", "Guacamole", "Sour Cream & Chive", "Hummus", "Mild Salsa"),
               (("200g", 1.0), ("300g", 1.35)), 1.50, None,
               "a cool dip for chips, wraps and crudites"),
            _t("Chocolate", "Chocolate Bar",
               ("Milk", "Dark 70%", "Hazelnut", "Salted Caramel", "Organic Dark"),
               (("100g", 1.0), ("200g", 1.8)), 1.20, None,
               "a smooth chocolate treat to share or savour", (0.3, 330)),
            _t("Biscuits", "Biscuits",
               ("Digestive", "Chocolate Digestive", "Shortbread", "Ginger Nut", "Oat"),
               (("300g", 1.0), ("400g", 1.25)), 1.10, 14,
               "classic biscuits to dunk in a cup of tea"),
            _t("Nuts", "Nuts",
               ("Salted Peanut", "Roasted Cashew", "Mixed", "Almond", "Honey Roasted"),
               (("200g", 1.0), ("400g", 1.8)), 2.00, None,
               "crunchy roasted nuts for snacking and sharing"),
            _t("Popcorn", "Popcorn",
               ("Sweet & Salty", "Salted", "Toffee", "Sweet"),
               (("100g", 1.0),), 1.20, None,
               "light popcorn for film nights on the sofa"),
        ),
        share=1.1,
        season=(0.2, 310),
    ),
    Category(
        "Beverages",
        "the drinks aisle",
        (("Fizzwell", 1), ("Highland Springs", 1), ("Roastery Lane", 2), ("Sunburst", 1),
         (PRIVATE_LABEL, 0)),
        (
            _t("Coffee", "Coffee",
               ("Colombian Ground", "Espresso Bean", "Instant", "Organic Ground",
                "Decaf Ground"),
               (("227g", 1.0), ("454g", 1.8)), 3.50, 18,
               "rich roasted coffee for a morning cup with milk"),
            _t("Tea Bags", "Tea Bags",
               ("English Breakfast", "Earl Grey", "Green", "Peppermint",
                "Organic English Breakfast"),
               (("80 pack", 1.0), ("160 pack", 1.8)), 2.20, 21,
               "a comforting brew of tea any time of day", (0.25, 20)),
            _t("Water", "Water",
               ("Sparkling Lemon", "Sparkling", "Sparkling Lime", "Still Spring"),
               (("6x500ml", 1.0), ("2L", 0.5)), 1.60, 7,
               "refreshing bottled water for hydration on the go", (0.5, 200)),
            _t("Juice", "Juice",
               ("Orange", "Smooth Orange", "Apple", "Organic Orange", "Tropical"),
               (("1L", 1.0), ("1.75L", 1.6)), 1.80, 8,
               "fruit juice squeezed fresh for breakfast"),
            _t("Soft Drinks", "Soda",
               ("Cola", "Diet Cola", "Lemonade", "Ginger Beer", "Orange"),
               (("2L", 1.0), ("8x330ml", 2.2)), 1.50, None,
               "a fizzy soft drink for parties, films and meals", (0.5, 200)),
            _t("Iced Tea", "Iced Tea",
               ("Peach", "Lemon", "Green Tea & Mint"),
               (("1.5L", 1.0),), 1.70, None,
               "chilled and refreshing tea drink for summer days", (0.9, 205)),
        ),
        share=1.0,
        season=(1.0, 205),
    ),
    Category(
        "Frozen",
        "the freezer aisle",
        (("Polar Kitchen", 1), ("Frostbite", 1), ("Gelato Bella", 2), (PRIVATE_LABEL, 0)),
        (
            _t("Ice Cream", "Ice Cream",
               ("Vanilla", "Chocolate", "Strawberry", "Salted Caramel", "Mint Choc Chip"),
               (("500ml", 1.0), ("1L", 1.7)), 2.80, None,
               "a creamy frozen dessert for hot days", (0.9, 205)),
            _t("Pizza", "Pizza",
               ("Margherita", "Pepperoni", "Four Cheese", "Vegetable", "Stonebaked Margherita"),
               (("400g", 1.0), ("2x400g", 1.8)), 2.50, None,
               "a frozen pizza for a quick oven-baked dinner"),
            _t("Peas", "Peas",
               ("Garden", "Petits Pois", "Organic Garden", "Minted"),
               (("900g", 1.0), ("500g", 0.65)), 1.30, 21,
               "sweet frozen vegetables ready in minutes"),
            _t("Fish Fingers", "Fish Fingers",
               ("Cod", "Haddock", "Omega-3", "Salmon"),
               (("10 pack", 1.0), ("20 pack", 1.8)), 2.20, None,
               "crispy breaded fish for family teas with chips and peas"),
            _t("Ready Meal", "Ready Meal",
               ("Lasagne", "Chicken Tikka", "Cottage Pie", "Macaroni Cheese",
                "Vegetable Curry"),
               (("400g", 1.0),), 3.00, None,
               "a frozen ready meal for an easy dinner for one"),
            _t("Oven Chips", "Oven Chips",
               ("Straight Cut", "Crinkle Cut", "Chunky", "Sweet Potato"),
               (("1kg", 1.0), ("1.5kg", 1.4)), 1.60, 18,
               "crispy frozen potato chips straight from the oven"),
        ),
        share=0.9,
        season=(0.25, 205),
    ),
    Category(
        "Household",
        "the household cleaning aisle",
        (("Sparkle", 1), ("Pure Home", 2), ("BrightWash", 1), (PRIVATE_LABEL, 0)),
        (
            _t("Washing-Up Liquid", "Washing-Up Liquid",
               ("Original", "Lemon", "Eco", "Sensitive"),
               (("500ml", 1.0), ("900ml", 1.6)), 1.20, 28,
               "grease-cutting suds for sparkling clean dishes"),
            _t("Laundry Liquid", "Laundry Liquid",
               ("Bio", "Non-Bio", "Colour", "Eco Non-Bio"),
               (("1.5L", 1.0), ("3L", 1.8)), 5.00, 35,
               "a laundry detergent for fresh, clean clothes"),
            _t("Toilet Tissue", "Toilet Tissue",
               ("Soft", "Quilted", "Recycled", "Extra Long"),
               (("9 roll", 1.0), ("4 roll", 0.5)), 4.00, 21,
               "soft, strong tissue rolls for the bathroom"),
            _t("Kitchen Towel", "Kitchen Towel",
               ("Ultra Absorbent", "Recycled", "Double Length"),
               (("2 roll", 1.0), ("4 roll", 1.8)), 2.00, 28,
               "absorbent paper towel rolls for kitchen spills"),
            _t("Bin Bags", "Bin Bags",
               ("Drawstring", "Heavy Duty", "Recycled", "Scented"),
               (("20 pack", 1.0), ("40 pack", 1.7)), 2.20, 35,
               "strong bin liners for kitchen rubbish"),
            _t("Sponges", "Sponges",
               ("Scourer", "Non-Scratch", "Eco"),
               (("4 pack", 1.0), ("8 pack", 1.7)), 1.00, None,
               "cleaning sponges for washing dishes and wiping surfaces"),
            _t("Surface Spray", "Surface Spray",
               ("Antibacterial", "Citrus", "Eco", "Multi-Purpose"),
               (("750ml", 1.0),), 1.80, None,
               "a cleaning spray for kitchen and bathroom surfaces"),
        ),
        share=0.9,
    ),
    Category(
        "Personal Care",
        "the health and beauty aisle",
        (("Pure Bloom", 2), ("FreshDay", 1), ("DermaCalm", 2), ("Vitalis", 1),
         (PRIVATE_LABEL, 0)),
        (
            _t("Shampoo", "Shampoo",
               ("Moisturising", "Anti-Dandruff", "Volume", "Argan Oil", "Sensitive"),
               (("250ml", 1.0), ("400ml", 1.45)), 2.80, 30,
               "a gentle hair wash for clean, healthy hair"),
            _t("Conditioner", "Conditioner",
               ("Moisturising", "Smooth", "Volume", "Argan Oil"),
               (("250ml", 1.0), ("400ml", 1.45)), 2.80, 35,
               "a nourishing hair rinse for soft, tangle-free hair"),
            _t("Toothpaste", "Toothpaste",
               ("Whitening", "Sensitive", "Fresh Mint", "Herbal", "Total Care"),
               (("75ml", 1.0), ("2x75ml", 1.8)), 2.00, 35,
               "fluoride toothpaste for fresh breath and strong teeth"),
            _t("Toothbrush", "Toothbrush",
               ("Soft", "Medium", "Bamboo", "Kids"),
               (("1 pack", 1.0), ("2 pack", 1.7)), 1.80, None,
               "a toothbrush for a thorough daily clean of your teeth"),
            _t("Shower Gel", "Shower Gel",
               ("Citrus", "Lavender", "Sport", "Coconut", "Sensitive"),
               (("250ml", 1.0), ("500ml", 1.7)), 1.90, 24,
               "a refreshing body wash for the daily shower"),
            _t("Deodorant", "Deodorant",
               ("Fresh", "Sensitive", "Sport", "Natural"),
               (("150ml", 1.0),), 2.50, 35,
               "an antiperspirant for all-day freshness"),
            _t("Sun Cream", "Sun Cream",
               ("SPF 30", "SPF 50", "Kids SPF 50", "Sensitive SPF 50"),
               (("200ml", 1.0),), 6.00, None,
               "sun protection lotion for the beach and holidays", (1.2, 195)),
        ),
        share=0.9,
    ),
    Category(
        "Baby",
        "the baby and toddler aisle",
        (("Little Sprout", 1), ("Tiny Steps", 1), ("Bloom Baby", 2), (PRIVATE_LABEL, 0)),
        (
            _t("Nappies", "Nappies",
               ("Size 1", "Size 2", "Size 3", "Size 4", "Size 5"),
               (("40 pack", 1.0), ("80 pack", 1.8)), 7.00, 10,
               "soft, absorbent baby nappies for day and night"),
            _t("Baby Wipes", "Baby Wipes",
               ("Sensitive", "Fragrance-Free", "Water", "Aloe"),
               (("56 pack", 1.0), ("4x56 pack", 3.4)), 1.50, 10,
               "gentle baby wipes for nappy changes and messy hands"),
            _t("Baby Food", "Baby Food Pouch",
               ("Apple & Banana", "Carrot & Sweet Potato", "Pear & Spinach",
                "Organic Mango", "Porridge"),
               (("120g", 1.0), ("4x120g", 3.5)), 1.00, 5,
               "smooth baby food puree for weaning little ones"),
            _t("Infant Formula", "Infant Formula",
               ("First", "Follow-On", "Organic First", "Comfort"),
               (("800g", 1.0),), 12.00, 10,
               "infant milk formula for feeding babies"),
            _t("Baby Bath", "Baby Bath",
               ("Gentle", "Lavender", "Organic"),
               (("500ml", 1.0),), 2.50, None,
               "a mild baby wash for bath time"),
            _t("Baby Snacks", "Baby Rice Cakes",
               ("Apple", "Banana", "Strawberry", "Plain"),
               (("40g", 1.0),), 0.90, None,
               "melt-in-the-mouth baby snacks for toddlers"),
        ),
        share=0.8,
    ),
    Category(
        "Pet",
        "the pet care aisle",
        (("Happy Paws", 1), ("Whisker Co", 1), ("WildNature", 2), (PRIVATE_LABEL, 0)),
        (
            _t("Dog Food", "Dog Food",
               ("Chicken Dry", "Beef Chunks", "Grain-Free Salmon", "Puppy Chicken",
                "Senior Lamb"),
               (("2kg", 1.0), ("12x400g", 1.6)), 6.00, 14,
               "complete dog food for healthy, happy dogs"),
            _t("Cat Food", "Cat Food",
               ("Tuna in Jelly", "Chicken in Gravy", "Salmon Dry", "Kitten Chicken",
                "Indoor Turkey"),
               (("12x85g", 1.0), ("800g", 0.8)), 4.50, 10,
               "complete cat food for healthy, happy cats"),
            _t("Cat Litter", "Cat Litter",
               ("Clumping", "Lightweight", "Wood Pellet", "Unscented"),
               (("10L", 1.0), ("5L", 0.6)), 4.00, 21,
               "absorbent cat litter for a fresh litter tray"),
            _t("Dog Treats", "Dog Treats",
               ("Dental Stick", "Chicken Jerky", "Biscuit Bone", "Training"),
               (("200g", 1.0),), 2.50, None,
               "tasty dog treats for training and rewards"),
            _t("Cat Treats", "Cat Treats",
               ("Crunchy Salmon", "Creamy Chicken", "Dental"),
               (("60g", 1.0),), 1.60, None,
               "tasty cat treats for a purring reward"),
            _t("Poo Bags", "Dog Poo Bags",
               ("Biodegradable", "Scented"),
               (("120 pack", 1.0),), 2.00, 40,
               "strong bags for clean dog walks"),
        ),
        share=0.7,
    ),
)

# Product types bought together (undirected): a purchase of one often brings
# the other into the same basket.
COMPLEMENTS: Final[tuple[tuple[str, str], ...]] = (
    ("Cereal", "Milk"),
    ("Coffee", "Milk"),
    ("Loaf", "Butter"),
    ("Eggs", "Bacon"),
    ("Eggs", "Loaf"),
    ("Pasta", "Pasta Sauce"),
    ("Beef Mince", "Chopped Tomatoes"),
    ("Beef Mince", "Pasta"),
    ("Rice", "Curry Sauce"),
    ("Chicken Breast", "Rice"),
    ("Tortilla Chips", "Dip"),
    ("Wraps", "Dip"),
    ("Tea Bags", "Biscuits"),
    ("Beef Burgers", "Rolls"),
    ("Sausages", "Rolls"),
    ("Salad Leaves", "Tomatoes"),
    ("Avocados", "Loaf"),
    ("Strawberries", "Cream"),
    ("Bananas", "Yogurt"),
    ("Salmon", "Potatoes"),
    ("Fish Fingers", "Peas"),
    ("Fish Fingers", "Oven Chips"),
    ("Crisps", "Soft Drinks"),
    ("Pizza", "Soft Drinks"),
    ("Popcorn", "Soft Drinks"),
    ("Washing-Up Liquid", "Sponges"),
    ("Shampoo", "Conditioner"),
    ("Toothpaste", "Toothbrush"),
    ("Nappies", "Baby Wipes"),
    ("Baby Food", "Baby Snacks"),
    ("Cat Food", "Cat Litter"),
    ("Cat Food", "Cat Treats"),
    ("Dog Food", "Dog Treats"),
    ("Dog Food", "Poo Bags"),
)


@dataclass(frozen=True)
class Segment:
    """A customer segment: a shared taste that individuals vary around.

    ``categories`` weights categories (missing ones get a small weight);
    ``price_sensitivity`` > 0 prefers the cheaper items of a type;
    ``private_label``, ``organic`` and ``loyalty`` are log-scale affinities
    (loyalty: for the customer's favourite brand of each category);
    ``basket`` is the mean number of non-staple picks per visit, ``staples``
    the mean number of items bought on a personal schedule, ``visits`` the
    mean visits per week and ``household`` scales quantities and how fast
    staples run out. ``age`` and ``region`` are the segment's distribution
    over ``AGE_BANDS`` and ``REGIONS``.
    """

    name: str
    share: float
    categories: dict[str, float]
    price_sensitivity: float
    private_label: float
    organic: float
    loyalty: float
    basket: float
    staples: float
    visits: float
    household: float
    age: tuple[float, float, float, float, float, float]
    region: tuple[float, float, float, float]


SEGMENTS: Final[tuple[Segment, ...]] = (
    Segment("Budget Basics", 0.15,
            {"Pantry": 3.0, "Frozen": 2.5, "Household": 2.0, "Snacks": 1.5, "Dairy": 1.5,
             "Bakery": 1.5, "Meat & Fish": 1.0, "Produce": 1.0, "Beverages": 1.0,
             "Personal Care": 1.0, "Pet": 0.5, "Baby": 0.3},
            price_sensitivity=1.6, private_label=1.4, organic=-0.8, loyalty=0.6,
            basket=1.0, staples=3, visits=0.20, household=1.4,
            age=(0.10, 0.22, 0.22, 0.18, 0.15, 0.13), region=(0.35, 0.25, 0.20, 0.20)),
    Segment("Young Families", 0.15,
            {"Baby": 4.0, "Dairy": 2.5, "Produce": 2.0, "Bakery": 2.0, "Snacks": 2.0,
             "Frozen": 1.8, "Pantry": 1.5, "Meat & Fish": 1.2, "Household": 1.2,
             "Beverages": 1.0, "Personal Care": 1.0, "Pet": 0.3},
            price_sensitivity=0.9, private_label=0.7, organic=0.2, loyalty=0.9,
            basket=1.4, staples=5, visits=0.25, household=1.8,
            age=(0.04, 0.40, 0.40, 0.11, 0.03, 0.02), region=(0.25, 0.25, 0.25, 0.25)),
    Segment("Health Enthusiasts", 0.11,
            {"Produce": 4.0, "Dairy": 2.0, "Beverages": 2.0, "Pantry": 1.5,
             "Personal Care": 1.2, "Meat & Fish": 1.0, "Bakery": 1.0, "Household": 0.6,
             "Snacks": 0.5, "Frozen": 0.3, "Baby": 0.3, "Pet": 0.3},
            price_sensitivity=0.1, private_label=-0.6, organic=1.6, loyalty=0.8,
            basket=1.1, staples=4, visits=0.23, household=1.1,
            age=(0.12, 0.30, 0.25, 0.15, 0.11, 0.07), region=(0.15, 0.20, 0.25, 0.40)),
    Segment("Gourmet Cooks", 0.10,
            {"Meat & Fish": 4.0, "Produce": 2.5, "Pantry": 2.2, "Bakery": 2.0, "Dairy": 1.8,
             "Beverages": 1.0, "Snacks": 0.6, "Household": 0.6, "Personal Care": 0.6,
             "Frozen": 0.3, "Pet": 0.3, "Baby": 0.2},
            price_sensitivity=-0.5, private_label=-1.0, organic=0.6, loyalty=1.3,
            basket=1.2, staples=3, visits=0.21, household=1.2,
            age=(0.04, 0.15, 0.25, 0.25, 0.19, 0.12), region=(0.20, 0.30, 0.30, 0.20)),
    Segment("Students & Starters", 0.11,
            {"Snacks": 3.5, "Beverages": 3.0, "Frozen": 3.0, "Pantry": 2.2, "Bakery": 1.0,
             "Dairy": 1.0, "Personal Care": 1.0, "Household": 0.6, "Produce": 0.6,
             "Meat & Fish": 0.5, "Pet": 0.1, "Baby": 0.05},
            price_sensitivity=1.8, private_label=1.0, organic=-0.5, loyalty=0.3,
            basket=0.9, staples=2, visits=0.25, household=1.0,
            age=(0.55, 0.30, 0.07, 0.04, 0.02, 0.02), region=(0.20, 0.20, 0.40, 0.20)),
    Segment("Pet Households", 0.10,
            {"Pet": 5.0, "Household": 2.0, "Pantry": 1.5, "Dairy": 1.2, "Bakery": 1.0,
             "Produce": 1.0, "Snacks": 1.0, "Meat & Fish": 1.0, "Beverages": 0.8,
             "Frozen": 0.8, "Personal Care": 0.8, "Baby": 0.1},
            price_sensitivity=0.7, private_label=0.4, organic=0.0, loyalty=1.5,
            basket=1.1, staples=3, visits=0.18, household=1.3,
            age=(0.05, 0.15, 0.22, 0.25, 0.20, 0.13), region=(0.25, 0.25, 0.20, 0.30)),
    Segment("Traditional Seniors", 0.14,
            {"Bakery": 3.0, "Dairy": 3.0, "Produce": 2.0, "Meat & Fish": 2.0, "Pantry": 2.0,
             "Household": 1.5, "Beverages": 1.2, "Snacks": 1.0, "Personal Care": 1.0,
             "Frozen": 0.8, "Pet": 0.5, "Baby": 0.1},
            price_sensitivity=0.8, private_label=0.1, organic=0.0, loyalty=2.0,
            basket=1.0, staples=4, visits=0.30, household=1.0,
            age=(0.01, 0.02, 0.05, 0.12, 0.35, 0.45), region=(0.35, 0.35, 0.15, 0.15)),
    Segment("Convenience Professionals", 0.14,
            {"Beverages": 2.5, "Frozen": 2.5, "Snacks": 2.0, "Personal Care": 2.0,
             "Bakery": 1.5, "Dairy": 1.2, "Pantry": 1.0, "Meat & Fish": 0.8,
             "Produce": 0.8, "Household": 0.8, "Pet": 0.2, "Baby": 0.1},
            price_sensitivity=-0.1, private_label=-0.3, organic=0.3, loyalty=0.8,
            basket=1.0, staples=2, visits=0.15, household=1.0,
            age=(0.10, 0.40, 0.30, 0.13, 0.05, 0.02), region=(0.15, 0.20, 0.35, 0.30)),
)

# Behaviour knobs shared by all customers.
_COMPLEMENT_PROBABILITY: Final = 0.3
_COMPLEMENT_FAVOURITE: Final = 0.75  # else another item of the complementary type
_CART_BEFORE_PURCHASE: Final = 0.92
_VIEW_BEFORE_PURCHASE: Final = (0.95, 0.55)  # discovery, staple
_BROWSE_PER_PURCHASE: Final = 1.5
_BROWSE_PER_VISIT: Final = 0.4
_BROWSE_FROM_TASTE: Final = 0.75  # else from what is popular right now
_ABANDONED_CART: Final = 0.24
_ACTIVITY_SPREAD: Final = 0.9  # sigma of the log-normal visit rate
_LATE_JOINERS: Final = 0.15
_ADOPTION_DAYS: Final = 30.0  # mean delay before a new favourite replaces a staple

_CONFIG_ERROR: Final = "DemoConfig.{field} must be {rule}, got {value!r}"


# --------------------------------------------------------------------------- public API


def generate_demo(config: DemoConfig = DemoConfig()) -> DemoData:
    """Generate the demo world for ``config``; the same config gives identical frames.

    Raises ``ValueError`` when the config is out of range (the message names
    the field). Takes well under a second for small worlds and a few seconds
    at the defaults.
    """
    start = _check_config(config)
    catalog_seed, customer_seed, event_seed = np.random.SeedSequence(config.seed).spawn(3)
    catalog = _build_catalog(config, np.random.default_rng(catalog_seed))
    population = _build_population(config, catalog, np.random.default_rng(customer_seed))
    events = _simulate_events(config, start, catalog, population,
                              np.random.default_rng(event_seed))
    return DemoData(items=catalog.frame, customers=population.frame, events=events)


def write_demo(
    data: DemoData, directory: Path, *, fmt: Literal["csv", "parquet"] = "csv"
) -> dict[str, Path]:
    """Write ``items``, ``customers`` and ``events`` files into ``directory``.

    Creates the directory if needed and replaces existing files of the same
    name; files are written under temporary names first so that a failure
    leaves no half-written dataset. Returns ``{"items": path, ...}``.
    """
    if fmt not in ("csv", "parquet"):
        raise ValueError(f"fmt must be 'csv' or 'parquet', got {fmt!r}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    frames = {"items": data.items, "customers": data.customers, "events": data.events}
    paths = {name: directory / f"{name}.{fmt}" for name in frames}
    temporary = {name: directory / f".{name}.{fmt}.tmp" for name in frames}
    try:
        for name, frame in frames.items():
            if fmt == "csv":
                frame.write_csv(temporary[name])
            else:
                frame.write_parquet(temporary[name])
        for name in frames:
            os.replace(temporary[name], paths[name])
    finally:
        for path in temporary.values():
            path.unlink(missing_ok=True)
    return paths


# --------------------------------------------------------------------------- catalog


@dataclass(frozen=True, eq=False)
class _Catalog:
    """Items as parallel arrays (length I, grouped by type) plus the items frame.

    ``demand`` is (weeks, I): each item's time-varying appeal per week
    (season, trend, launch ramp; 0 before the week it launches in).
    """

    frame: pl.DataFrame
    category: IntArray
    type_: IntArray
    brand: IntArray
    private_label: BoolArray
    organic: BoolArray
    relative_log_price: FloatArray
    launch_day: IntArray
    log_popularity: FloatArray
    demand: FloatArray
    staple_clock: FloatArray  # (T, days + 1), see _staple_clock
    type_start: IntArray  # (T,) first item of each type
    type_count: IntArray  # (T,)
    type_interval: FloatArray  # (T,), NaN when the type is not a staple
    complements: IntArray  # (T, max complements), -1 padded
    complement_count: IntArray  # (T,)
    brand_category: IntArray  # (B,)
    brand_private: BoolArray  # (B,)
    brand_tier: IntArray  # (B,)
    categories: tuple[Category, ...]


def _check_config(config: DemoConfig) -> date:
    def fail(field: str, rule: str, value: object) -> ValueError:
        return ValueError(_CONFIG_ERROR.format(field=field, rule=rule, value=value))

    if not 1 <= config.categories <= len(CATEGORIES):
        raise fail("categories", f"between 1 and {len(CATEGORIES)}", config.categories)
    if config.items < 2 * config.categories:
        raise fail("items", "at least 2 per category", config.items)
    if config.customers < 1:
        raise fail("customers", "at least 1", config.customers)
    if config.days < 2 * COLD_WINDOW_DAYS:
        raise fail("days", f"at least {2 * COLD_WINDOW_DAYS}", config.days)
    try:
        return date.fromisoformat(config.start)
    except (TypeError, ValueError):
        raise fail("start", "an ISO date like '2026-05-01'", config.start) from None


def _split(total: int, weights: FloatArray, *, minimum: int) -> IntArray:
    """Largest-remainder split of ``total`` by ``weights``, each part >= ``minimum``."""
    base = np.full(len(weights), minimum, dtype=np.int64)
    rest = total - int(base.sum())
    exact = rest * weights / weights.sum()
    parts = np.floor(exact).astype(np.int64)
    short = rest - int(parts.sum())
    parts[np.argsort(-(exact - parts), kind="stable")[:short]] += 1
    return base + parts


def _round_price(price: FloatArray) -> FloatArray:
    """Shelf prices: x.x9 below 10, x.49 / x.99 above."""
    low = np.maximum(np.round(price * 10) / 10 - 0.01, 0.29)
    high = np.round(price * 2) / 2 - 0.01
    return np.round(np.where(price < 10, low, high), 2)


def _build_catalog(config: DemoConfig, rng: np.random.Generator) -> _Catalog:
    categories = CATEGORIES[: config.categories]
    per_category = _split(config.items, np.array([c.share for c in categories]), minimum=2)

    # Global brand and type tables.
    brand_names: list[str] = []
    brand_category: list[int] = []
    brand_tier: list[int] = []
    types: list[ProductType] = []
    type_category: list[int] = []
    for k, category in enumerate(categories):
        for name, tier in category.brands:
            brand_names.append(name)
            brand_category.append(k)
            brand_tier.append(tier)
        types.extend(category.types)
        type_category.extend([k] * len(category.types))

    rows: dict[str, list] = {key: [] for key in (
        "type", "variant", "size", "size_mult", "brand", "tier", "organic")}
    type_count = np.zeros(len(types), dtype=np.int64)
    brand_offset = 0
    type_offset = 0
    for k, category in enumerate(categories):
        n_types = len(category.types)
        if per_category[k] < n_types:
            chosen = np.sort(rng.choice(n_types, size=per_category[k], replace=False))
            counts = np.zeros(n_types, dtype=np.int64)
            counts[chosen] = 1
        else:
            counts = _split(int(per_category[k]), rng.uniform(0.6, 1.4, n_types), minimum=1)
        n_brands = len(category.brands)
        brand_weight = np.array([1.6 if name == PRIVATE_LABEL else 1.0
                                 for name, _ in category.brands])
        for j, ptype in enumerate(category.types):
            t = type_offset + j
            type_count[t] = counts[j]
            if counts[j] == 0:
                continue
            # Every (variant, size, brand) combination, earlier variants and
            # sizes more common, so that each type has a familiar core range.
            nv, ns = len(ptype.variants), len(ptype.sizes)
            v, s, b = np.meshgrid(np.arange(nv), np.arange(ns), np.arange(n_brands),
                                  indexing="ij")
            v, s, b = v.ravel(), s.ravel(), b.ravel()
            weight = (0.85 ** v) * (0.6 ** s) * brand_weight[b]
            n = int(counts[j])
            pick = rng.choice(len(v), size=min(n, len(v)), replace=False,
                              p=weight / weight.sum())
            if n > len(v):
                extra = rng.choice(len(v), size=n - len(v), p=weight / weight.sum())
                pick = np.concatenate([pick, extra])
            for index in pick:
                variant = ptype.variants[v[index]]
                size, size_mult = ptype.sizes[s[index]]
                tier = category.brands[b[index]][1]
                organic = "Organic" in variant
                if organic and tier == 0:
                    tier = 1
                rows["type"].append(t)
                rows["variant"].append(variant)
                rows["size"].append(size)
                rows["size_mult"].append(size_mult)
                rows["brand"].append(brand_offset + b[index])
                rows["tier"].append(tier)
                rows["organic"].append(organic)
        brand_offset += n_brands
        type_offset += n_types

    type_ = np.asarray(rows["type"], dtype=np.int64)
    n_items = len(type_)
    brand = np.asarray(rows["brand"], dtype=np.int64)
    tier = np.asarray(rows["tier"], dtype=np.int64)
    organic = np.asarray(rows["organic"], dtype=bool)
    size_mult = np.asarray(rows["size_mult"], dtype=np.float64)
    category = np.asarray(type_category, dtype=np.int64)[type_]
    brand_private = np.array([name == PRIVATE_LABEL for name in brand_names])
    private_label = brand_private[brand]

    base_price = np.array([types[t].price for t in type_])
    raw_price = (base_price * size_mult * np.asarray(_TIER_PRICE)[tier]
                 * np.where(organic, _ORGANIC_PRICE, 1.0) * rng.lognormal(0.0, 0.07, n_items))
    price = _round_price(raw_price)
    # Price per unit relative to the type's average: what a price-sensitive
    # shopper compares when choosing between variants of the same thing.
    unit_log = np.log(price / size_mult)
    type_mean = np.bincount(type_, weights=unit_log, minlength=len(types)) / np.maximum(
        type_count, 1)
    relative_log_price = unit_log - type_mean[type_]

    launch_day = _launch_days(config, n_items, rng)
    log_popularity = rng.normal(0.0, 0.9, n_items)

    titles = _titles(rows["variant"], [types[t].noun for t in type_], rows["size"],
                     [brand_names[b] for b in brand])
    descriptions = [
        _description(variant, types[t], size, brand_names[b], int(tr), categories[c])
        for variant, t, size, b, tr, c in zip(
            rows["variant"], type_, rows["size"], brand, tier, category, strict=True)
    ]
    width = max(5, len(str(n_items)))
    frame = pl.DataFrame(
        {
            "item_id": [f"P{i + 1:0{width}d}" for i in range(n_items)],
            "title": titles,
            "description": descriptions,
            "category": [categories[c].name for c in category],
            "brand": [brand_names[b] for b in brand],
            "price": price,
            "price_tier": [PRICE_TIERS[x] for x in tier],
            "private_label": private_label,
            "launch_day": launch_day,
        },
        schema={
            "item_id": pl.String, "title": pl.String, "description": pl.String,
            "category": pl.String, "brand": pl.String, "price": pl.Float64,
            "price_tier": pl.String, "private_label": pl.Boolean, "launch_day": pl.Int64,
        },
    )

    type_start = np.concatenate([[0], np.cumsum(type_count)[:-1]]).astype(np.int64)
    type_interval = np.array([np.nan if p.interval is None else p.interval for p in types])
    complements, complement_count = _complement_table(types, type_count)
    type_category_ = np.asarray(type_category, dtype=np.int64)
    demand = _demand(config, categories, types, type_category_, type_, launch_day, rng)
    staple_clock = _staple_clock(config, categories, types, type_category_)
    return _Catalog(
        frame=frame,
        category=category,
        type_=type_,
        brand=brand,
        private_label=private_label,
        organic=organic,
        relative_log_price=relative_log_price,
        launch_day=launch_day,
        log_popularity=log_popularity,
        demand=demand,
        staple_clock=staple_clock,
        type_start=type_start,
        type_count=type_count,
        type_interval=type_interval,
        complements=complements,
        complement_count=complement_count,
        brand_category=np.asarray(brand_category, dtype=np.int64),
        brand_private=brand_private,
        brand_tier=np.asarray(brand_tier, dtype=np.int64),
        categories=categories,
    )


def _launch_days(config: DemoConfig, n_items: int, rng: np.random.Generator) -> IntArray:
    """Most items exist from day 0; some launch later, a few in the last two weeks."""
    n_cold = max(1, round(COLD_LAUNCH_SHARE * n_items))
    n_late = round(LATE_LAUNCH_SHARE * n_items)
    order = rng.permutation(n_items)
    launch = np.zeros(n_items, dtype=np.int64)
    cold_from = config.days - COLD_WINDOW_DAYS
    launch[order[:n_cold]] = rng.integers(cold_from, config.days, n_cold)
    launch[order[n_cold:n_cold + n_late]] = rng.integers(1, cold_from, n_late)
    return launch


def _titles(variants: list[str], nouns: list[str], sizes: list[str],
            brands: list[str]) -> list[str]:
    """``"Organic Whole Milk 1L"``; the brand is prefixed where two items would clash."""
    plain = [f"{v} {n} {s}" for v, n, s in zip(variants, nouns, sizes, strict=True)]
    seen: dict[str, int] = {}
    for title in plain:
        seen[title] = seen.get(title, 0) + 1
    titles: list[str] = []
    used: set[str] = set()
    for title, brand in zip(plain, brands, strict=True):
        candidate = title if seen[title] == 1 else f"{brand} {title}"
        k = 2
        unique = candidate
        while unique in used:
            unique = f"{candidate} ({k})"
            k += 1
        used.add(unique)
        titles.append(unique)
    return titles


_TIER_PHRASES: Final = (
    "an everyday low-price pick from",
    "a reliable favourite from",
    "a premium choice from",
)


def _description(variant: str, ptype: ProductType, size: str, brand: str, tier: int,
                 category: Category) -> str:
    """One sentence from the item's attributes, worded per type and category."""
    return (f"{variant} {ptype.noun.lower()} by {brand} ({size}): {ptype.blurb}, "
            f"{_TIER_PHRASES[tier]} {category.aisle}.")


def _complement_table(types: list[ProductType], type_count: IntArray
                      ) -> tuple[IntArray, IntArray]:
    index = {p.key: t for t, p in enumerate(types) if type_count[t] > 0}
    partners: list[list[int]] = [[] for _ in types]
    for a, b in COMPLEMENTS:
        if a in index and b in index:
            partners[index[a]].append(index[b])
            partners[index[b]].append(index[a])
    width = max(1, max(len(p) for p in partners))
    table = np.full((len(types), width), -1, dtype=np.int64)
    for t, p in enumerate(partners):
        table[t, : len(p)] = p
    return table, np.array([len(p) for p in partners], dtype=np.int64)


def _log_season(config: DemoConfig, categories: tuple[Category, ...],
                types: list[ProductType], type_category: IntArray,
                days: FloatArray) -> FloatArray:
    """Log-scale seasonal demand of each type (category cycle + type cycle), shape (len(days), T)."""
    doy = date.fromisoformat(config.start).timetuple().tm_yday + days

    def cycle(season: tuple[float, float] | None) -> FloatArray:
        if season is None:
            return np.zeros(len(days))
        amplitude, peak = season
        return amplitude * np.cos(2 * np.pi * (doy - peak) / 365.25)

    by_category = np.stack([cycle(c.season) for c in categories], axis=1)
    by_type = np.stack([cycle(p.season) for p in types], axis=1)
    return by_category[:, type_category] + by_type


def _staple_clock(config: DemoConfig, categories: tuple[Category, ...],
                  types: list[ProductType], type_category: IntArray) -> FloatArray:
    """Cumulative seasonal consumption of each type by day, shape (T, days + 1).

    A staple runs out after a fixed amount of this clock, so in its season it
    is bought more often (more water in summer).
    """
    rate = np.exp(_log_season(config, categories, types, type_category,
                              np.arange(config.days) + 0.5))
    clock = np.zeros((len(types), config.days + 1))
    clock[:, 1:] = np.cumsum(rate, axis=0).T
    return clock


def _demand(config: DemoConfig, categories: tuple[Category, ...], types: list[ProductType],
            type_category: IntArray, type_: IntArray, launch_day: IntArray,
            rng: np.random.Generator) -> FloatArray:
    """Weekly appeal of each item, shape (weeks, I); 0 before the item's launch week."""
    n_items = len(type_)
    weeks = math.ceil(config.days / 7)
    week_start = np.arange(weeks) * 7
    week_end = np.minimum(week_start + 6, config.days - 1)
    middle = (week_start + week_end) / 2.0
    log_demand = _log_season(config, categories, types, type_category, middle)[:, type_]

    # A few items catch on over the window, a few fade.
    growth = np.zeros(n_items)
    trend = rng.random(n_items)
    rising, fading = trend < 0.08, (trend >= 0.08) & (trend < 0.13)
    growth[rising] = rng.uniform(1.0, 2.2, int(rising.sum()))
    growth[fading] = -rng.uniform(0.8, 1.6, int(fading.sum()))
    log_demand += (middle / config.days)[:, None] * growth[None, :]

    demand = np.exp(log_demand)
    # New items ramp up over six weeks; they cannot be seen before launch.
    since = middle[:, None] - launch_day[None, :]
    ramp = np.where(launch_day[None, :] > 0, 0.1 + 0.9 * np.clip(since / 42.0, 0.0, 1.0), 1.0)
    demand *= ramp
    demand[launch_day[None, :] > week_end[:, None]] = 0.0
    return demand


# --------------------------------------------------------------------------- customers


@dataclass(frozen=True, eq=False)
class _Population:
    """Customers as parallel arrays (length C) plus the customers frame.

    ``taste`` is (C, I): log-scale appeal of each item to each customer before
    time effects; ``favourite`` is (C, T): each customer's usual item of each
    type once every item has launched (-1 where the type has no items), and
    ``established`` the usual item among those on sale from day 0 (the
    favourite itself where a type has none).
    """

    frame: pl.DataFrame
    segment: IntArray
    taste: FloatArray
    favourite: IntArray
    established: IntArray
    rate: FloatArray  # visits per day
    basket: FloatArray
    staples: IntArray
    household: FloatArray
    first_day: IntArray
    hour: FloatArray  # preferred hour of day for visits


def _pick_null(n: int, rng: np.random.Generator) -> BoolArray:
    mask = np.zeros(n, dtype=bool)
    mask[rng.choice(n, size=round(MISSING_SHARE * n), replace=False)] = True
    return mask


def _build_population(config: DemoConfig, catalog: _Catalog,
                      rng: np.random.Generator) -> _Population:
    n = config.customers
    names = [c.name for c in catalog.categories]
    shares = np.array([s.share for s in SEGMENTS])
    segment = rng.choice(len(SEGMENTS), size=n, p=shares / shares.sum())

    age = np.empty(n, dtype=np.int64)
    region = np.empty(n, dtype=np.int64)
    for s, seg in enumerate(SEGMENTS):
        members = np.flatnonzero(segment == s)
        age[members] = rng.choice(len(AGE_BANDS), size=len(members), p=np.array(seg.age))
        region[members] = rng.choice(len(REGIONS), size=len(members), p=np.array(seg.region))
    gender = rng.choice(len(GENDERS), size=n, p=np.array(GENDER_SHARES))

    def labels(codes: IntArray, vocabulary: tuple[str, ...]) -> list[str | None]:
        null = _pick_null(n, rng)
        return [None if null[i] else vocabulary[codes[i]] for i in range(n)]

    width = max(5, len(str(n)))
    frame = pl.DataFrame(
        {
            "customer_id": [f"C{i + 1:0{width}d}" for i in range(n)],
            "age_band": labels(age, AGE_BANDS),
            "region": labels(region, REGIONS),
            "gender": labels(gender, GENDERS),
            "segment": [SEGMENTS[s].name for s in segment],
        },
        schema={"customer_id": pl.String, "age_band": pl.String, "region": pl.String,
                "gender": pl.String, "segment": pl.String},
    )

    def per_segment(attribute: str) -> FloatArray:
        return np.array([float(getattr(seg, attribute)) for seg in SEGMENTS])[segment]

    # Individual taste around the segment's: category shares from a Dirichlet
    # centred on the segment's, plus personal affinities.
    segment_prefs = np.array([[seg.categories.get(name, 0.2) for name in names]
                              for seg in SEGMENTS])
    segment_prefs /= segment_prefs.sum(axis=1, keepdims=True)
    category_pref = rng.gamma(25.0 * segment_prefs[segment])
    category_pref /= category_pref.sum(axis=1, keepdims=True)
    n_types = len(catalog.type_count)
    type_effect = rng.normal(0.0, 0.6, (n, n_types))
    price_sensitivity = per_segment("price_sensitivity") + rng.normal(0.0, 0.3, n)
    private_affinity = per_segment("private_label") + rng.normal(0.0, 0.4, n)
    organic_affinity = per_segment("organic") + rng.normal(0.0, 0.4, n)
    loyalty = per_segment("loyalty") * rng.lognormal(0.0, 0.3, n)

    # A favourite brand per category: cheaper brands for price-sensitive
    # customers, the private label for those who like it.
    brand_score = (rng.gumbel(size=(n, len(catalog.brand_tier)))
                   + private_affinity[:, None] * catalog.brand_private[None, :]
                   - 0.5 * price_sensitivity[:, None] * (catalog.brand_tier[None, :] - 1))
    favourite_brand = np.empty((n, len(catalog.categories)), dtype=np.int64)
    for k in range(len(catalog.categories)):
        brands = np.flatnonzero(catalog.brand_category == k)
        favourite_brand[:, k] = brands[brand_score[:, brands].argmax(axis=1)]
    is_favourite = favourite_brand[:, catalog.category] == catalog.brand[None, :]

    taste = (np.log(category_pref)[:, catalog.category]
             + type_effect[:, catalog.type_]
             - price_sensitivity[:, None] * catalog.relative_log_price[None, :]
             + private_affinity[:, None] * catalog.private_label[None, :]
             + organic_affinity[:, None] * catalog.organic[None, :]
             + loyalty[:, None] * is_favourite
             + 0.8 * catalog.log_popularity[None, :]
             + rng.normal(0.0, 0.4, (n, len(catalog.type_))))

    # The usual item of each type: the best by taste, with a little chance.
    noisy = taste + rng.gumbel(size=taste.shape)
    favourite = np.full((n, n_types), -1, dtype=np.int64)
    established = np.full((n, n_types), -1, dtype=np.int64)
    on_sale = np.where(catalog.launch_day == 0, 0.0, -np.inf)
    for t in range(n_types):
        start, count = catalog.type_start[t], catalog.type_count[t]
        if count:
            block = noisy[:, start:start + count]
            favourite[:, t] = start + block.argmax(axis=1)
            established[:, t] = np.where(
                np.isfinite(on_sale[start:start + count]).any(),
                start + (block + on_sale[None, start:start + count]).argmax(axis=1),
                favourite[:, t])

    spread = _ACTIVITY_SPREAD
    rate = per_segment("visits") / 7.0 * rng.lognormal(-spread**2 / 2, spread, n)
    basket = per_segment("basket") * rng.lognormal(0.0, 0.3, n)
    staples = np.maximum(1, rng.poisson(per_segment("staples")))
    household = per_segment("household") * rng.lognormal(0.0, 0.15, n)
    late = rng.random(n) < _LATE_JOINERS
    first_day = np.where(late, rng.integers(0, max(1, (2 * config.days) // 3), n), 0)
    hour = rng.choice(np.array([9.5, 12.5, 17.5, 19.5]), size=n) + rng.normal(0.0, 0.7, n)
    return _Population(frame=frame, segment=segment, taste=taste, favourite=favourite,
                       established=established,
                       rate=rate, basket=basket, staples=staples, household=household,
                       first_day=first_day.astype(np.int64), hour=hour)


# --------------------------------------------------------------------------- events


def _cumulative(weights: FloatArray) -> FloatArray:
    """Weekly weights (W, I) -> one increasing array of length W * I for sampling.

    Row ``w`` holds ``w + cumulative share`` so a single ``searchsorted``
    samples any mix of weeks (see ``_sample_weekly``).
    """
    cum = np.cumsum(weights, axis=1)
    total = cum[:, -1:]
    cum /= np.where(total > 0, total, 1.0)
    cum += np.arange(len(cum))[:, None]
    return cum.ravel()


def _sample_weekly(flat: FloatArray, n_items: int, weeks: IntArray,
                   rng: np.random.Generator) -> IntArray:
    """One item index per entry of ``weeks``, drawn from that week's weights."""
    index = np.searchsorted(flat, weeks + rng.random(len(weeks)), side="right")
    return np.minimum(index - weeks * n_items, n_items - 1)


@dataclass(frozen=True, eq=False)
class _World:
    """What every customer's simulation shares: the catalog plus per-day tables."""

    catalog: _Catalog
    days: int
    log_traffic: FloatArray  # (days,) log of the relative store traffic by weekday
    popular: FloatArray  # flattened cumulative weights of what is popular each week
    staple_types: IntArray  # types with a repurchase interval and at least one item
    established: IntArray  # items on sale from day 0
    grid: FloatArray  # 0, 1, ..., days


@dataclass(frozen=True, eq=False)
class _Baskets:
    """One customer's purchases: parallel arrays over (visit, item) pairs, unique."""

    visit: IntArray
    item: IntArray
    staple: BoolArray  # bought on the customer's staple schedule
    quantity: IntArray


def _simulate_events(config: DemoConfig, start: date, catalog: _Catalog,
                     population: _Population, rng: np.random.Generator) -> pl.DataFrame:
    """Simulate every customer's visits and return the events frame, sorted by time."""
    days = config.days
    weekday = (start.weekday() + np.arange(days)) % 7
    world = _World(
        catalog=catalog,
        days=days,
        log_traffic=np.log(np.asarray(_WEEKDAY_TRAFFIC))[weekday],
        popular=_cumulative(np.exp(0.8 * catalog.log_popularity)[None, :] * catalog.demand),
        staple_types=np.flatnonzero(~np.isnan(catalog.type_interval)
                                    & (catalog.type_count > 0)),
        established=np.flatnonzero(catalog.launch_day == 0),
        grid=np.arange(days + 1, dtype=np.float64),
    )
    parts: list[tuple[IntArray, IntArray, IntArray, FloatArray]] = []
    for c in range(config.customers):
        parts.append(_simulate_customer(c, world, population, rng))

    customer = np.concatenate([np.full(len(p[0]), c, dtype=np.int64)
                               for c, p in enumerate(parts)])
    item = np.concatenate([p[0] for p in parts])
    kind = np.concatenate([p[1] for p in parts])
    seconds = np.concatenate([p[2] for p in parts])
    value = np.concatenate([p[3] for p in parts])
    order = np.lexsort((item, kind, customer, seconds))

    epoch0 = int(datetime(start.year, start.month, start.day, tzinfo=UTC).timestamp())
    width = max(8, len(str(len(order))))
    return pl.DataFrame(
        {
            "event_id": pl.int_range(1, len(order) + 1, eager=True).cast(pl.String)
            .str.zfill(width),
            "customer_id": population.frame["customer_id"].gather(customer[order]),
            "item_id": catalog.frame["item_id"].gather(item[order]),
            "event_type": pl.Series(np.asarray(EVENT_TYPE_CODES)[kind[order]], dtype=pl.String),
            "timestamp": pl.from_epoch(pl.Series(epoch0 + seconds[order]), time_unit="s")
            .dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "value": pl.Series(value[order], dtype=pl.Float64),
        }
    ).with_columns(pl.concat_str(pl.lit("E"), pl.col("event_id")).alias("event_id"))


def _simulate_customer(c: int, world: _World, population: _Population,
                       rng: np.random.Generator
                       ) -> tuple[IntArray, IntArray, IntArray, FloatArray]:
    """One customer's events as (item, kind index into EVENT_TYPE_CODES, seconds, value).

    ``seconds`` counts from the start of day 0.
    """
    catalog = world.catalog
    taste = population.taste[c]
    first = int(population.first_day[c])
    available = world.days - first

    # Visits: a long-tailed number of distinct days, weekends busier.
    n_visits = int(np.clip(rng.poisson(population.rate[c] * available), 3, available))
    keys = world.log_traffic[first:] + rng.gumbel(size=available)
    visit_day = np.sort(first + np.argpartition(-keys, n_visits - 1)[:n_visits])

    # What this customer picks from, week by week: taste x the week's demand.
    picks_from = _cumulative(np.exp(taste - taste.max())[None, :] * catalog.demand)
    baskets = _baskets(c, world, population, visit_day, picks_from, rng)
    return _sessions(c, world, population, visit_day, picks_from, baskets, rng)


def _staples(c: int, world: _World, population: _Population, visit_day: IntArray,
             rng: np.random.Generator) -> tuple[IntArray, IntArray, IntArray]:
    """The customer's usual item of a few staple types, bought at the first visit
    after it runs out (personal interval, jittered, on the type's seasonal clock).

    Returns (visit index, item) of each staple purchase and every item that is
    one of the customer's staples.
    """
    catalog = world.catalog
    launch = catalog.launch_day
    first = int(population.first_day[c])
    k = min(int(population.staples[c]), len(world.staple_types))
    score = population.taste[c, population.favourite[c, world.staple_types]] + rng.gumbel(
        size=len(world.staple_types))
    types = world.staple_types[np.argsort(-score)[:k]]
    newest = population.favourite[c, types]
    usual = population.established[c, types]
    interval = (catalog.type_interval[types] * rng.lognormal(0.0, 0.25, k)
                / np.sqrt(population.household[c]))
    clock = catalog.staple_clock[types]
    repeats = math.ceil(((clock[:, -1] - clock[:, first]) / interval).max()) + 1 if k else 1
    gaps = interval[:, None] * rng.lognormal(0.0, 0.15, (k, repeats))
    begin = np.maximum(launch[usual], first) + rng.random(k) * interval
    due = np.empty((k, repeats + 1))
    for j in range(k):
        on_clock = np.interp(begin[j], world.grid, clock[j]) + np.concatenate(
            [[0.0], np.cumsum(gaps[j, :-1])])
        due[j, 1:] = np.interp(on_clock, clock[j], world.grid, right=np.inf)
    # The window opens mid-cycle: the run-out before ``begin`` is still
    # unbought at the first visit if the customer has not shopped since.
    usual_gap = (world.days - first) / len(visit_day)
    carried = (launch[usual] <= first) & (begin - interval >= first - usual_gap)
    due[:, 0] = np.where(carried, first, np.inf)
    # A new favourite replaces the usual item some weeks after its launch.
    switch = launch[newest] + rng.exponential(_ADOPTION_DAYS, k)
    item = np.where(due >= switch[:, None], newest[:, None], usual[:, None])
    visit = np.searchsorted(visit_day, due, side="left")
    ok = (visit < len(visit_day)) & (launch[item] <= due)
    return visit[ok], item[ok], np.concatenate([newest, usual])


def _baskets(c: int, world: _World, population: _Population, visit_day: IntArray,
             picks_from: FloatArray, rng: np.random.Generator) -> _Baskets:
    """Staples, discovery picks and their complements, per visit."""
    catalog = world.catalog
    launch = catalog.launch_day
    n_items = len(launch)
    n_visits = len(visit_day)
    s_visit, s_item, staple_items = _staples(c, world, population, visit_day, rng)

    # Discovery: other items by taste and this week's demand.
    picks = rng.poisson(population.basket[c], n_visits)
    d_visit = np.repeat(np.arange(n_visits), picks)
    d_item = _sample_weekly(picks_from, n_items, visit_day[d_visit] // 7, rng)
    keep = launch[d_item] <= visit_day[d_visit]
    b_visit = np.concatenate([s_visit, d_visit[keep]])
    b_item = np.concatenate([s_item, d_item[keep]])

    # Complements: some purchases bring a partner into the basket, usually
    # the customer's usual item of the partner type.
    b_type = catalog.type_[b_item]
    n_partners = catalog.complement_count[b_type]
    adds = (n_partners > 0) & (rng.random(len(b_item)) < _COMPLEMENT_PROBABILITY)
    which = np.floor(rng.random(len(b_item)) * np.maximum(n_partners, 1)).astype(np.int64)
    partner = catalog.complements[b_type[adds], which[adds]]
    c_visit = b_visit[adds]
    favourite = population.favourite[c, partner]
    usual = np.where(launch[favourite] <= visit_day[c_visit], favourite,
                     population.established[c, partner])
    other = catalog.type_start[partner] + np.floor(
        rng.random(len(partner)) * catalog.type_count[partner]).astype(np.int64)
    c_item = np.where(rng.random(len(partner)) < _COMPLEMENT_FAVOURITE, usual, other)
    keep = launch[c_item] <= visit_day[c_visit]

    visit = np.concatenate([b_visit, c_visit[keep]])
    item = np.concatenate([b_item, c_item[keep]])
    # Every visit buys something: fall back to the favourite established item.
    empty = np.flatnonzero(np.bincount(visit, minlength=n_visits) == 0)
    if len(empty):
        fallback = world.established[population.taste[c, world.established].argmax()]
        visit = np.concatenate([visit, empty])
        item = np.concatenate([item, np.full(len(empty), fallback)])
    key = np.unique(visit * n_items + item)
    visit, item = key // n_items, key % n_items

    is_staple = np.zeros(n_items, dtype=bool)
    is_staple[staple_items] = True
    staple = is_staple[item]
    per_unit = np.where(staple, max(population.household[c] - 0.9, 0.1), 0.15)
    return _Baskets(visit=visit, item=item, staple=staple,
                    quantity=1 + rng.poisson(per_unit))


def _sessions(c: int, world: _World, population: _Population, visit_day: IntArray,
              picks_from: FloatArray, baskets: _Baskets, rng: np.random.Generator
              ) -> tuple[IntArray, IntArray, IntArray, FloatArray]:
    """Turn baskets into timed events: browsing views, carts, then checkout."""
    launch = world.catalog.launch_day
    n_items = len(launch)
    n_visits = len(visit_day)

    # Browsing: views of items the customer likes or that are popular this
    # week; some go to the cart and are abandoned.
    per_visit = np.bincount(baskets.visit, minlength=n_visits)
    browse = rng.poisson(_BROWSE_PER_PURCHASE * per_visit + _BROWSE_PER_VISIT)
    v_visit = np.repeat(np.arange(n_visits), browse)
    v_week = visit_day[v_visit] // 7
    from_taste = rng.random(len(v_visit)) < _BROWSE_FROM_TASTE
    v_item = np.where(from_taste, _sample_weekly(picks_from, n_items, v_week, rng),
                      _sample_weekly(world.popular, n_items, v_week, rng))
    keep = launch[v_item] <= visit_day[v_visit]
    v_visit, v_item = v_visit[keep], v_item[keep]

    # Visits start in opening hours (07:00-21:30; a time outside wraps round)
    # and last 6-40 minutes; a purchase's view and cart come before checkout.
    hour = 7.0 + (population.hour[c] - 7.0 + rng.normal(0.0, 1.3, n_visits)) % 14.5
    session = rng.uniform(6 * 60, 40 * 60, n_visits)
    opened = (visit_day * _SECONDS_PER_DAY + hour * 3600).astype(np.int64)
    checkout = opened + session.astype(np.int64)

    p_visit, p_item = baskets.visit, baskets.item
    n_p = len(p_item)
    p_session = session[p_visit]
    p_view = opened[p_visit] + (rng.random(n_p) * 0.7 * p_session).astype(np.int64)
    p_cart = p_view + ((0.02 + rng.random(n_p) * 0.2) * p_session).astype(np.int64) + 1
    view_first = np.where(baskets.staple, _VIEW_BEFORE_PURCHASE[1], _VIEW_BEFORE_PURCHASE[0])
    has_view = rng.random(n_p) < view_first
    has_cart = rng.random(n_p) < _CART_BEFORE_PURCHASE
    n_v = len(v_item)
    v_time = opened[v_visit] + (rng.random(n_v) * 0.9 * session[v_visit]).astype(np.int64)
    abandoned = rng.random(n_v) < _ABANDONED_CART
    a_time = v_time[abandoned] + (rng.random(int(abandoned.sum())) * 0.09
                                  * session[v_visit[abandoned]]).astype(np.int64) + 1

    item = np.concatenate([p_item[has_view], p_item[has_cart], p_item,
                           v_item, v_item[abandoned]])
    kind = np.concatenate([
        np.zeros(int(has_view.sum()), dtype=np.int64),
        np.ones(int(has_cart.sum()), dtype=np.int64),
        np.full(n_p, 2, dtype=np.int64),
        np.zeros(n_v, dtype=np.int64),
        np.ones(int(abandoned.sum()), dtype=np.int64),
    ])
    seconds = np.concatenate([p_view[has_view], p_cart[has_cart], checkout[p_visit],
                              v_time, a_time])
    value = np.concatenate([np.ones(int(has_view.sum() + has_cart.sum())),
                            baskets.quantity.astype(np.float64),
                            np.ones(n_v + int(abandoned.sum()))])
    return item, kind, seconds, value
