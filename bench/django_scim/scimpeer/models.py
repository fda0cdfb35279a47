"""The user django-scim2 serves: Django's user with django-scim2's SCIM columns (id,
externalId, userName) and the groups its User adapter lists."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractUser
from django.db import models
from django.db.models.functions import Upper
from django_scim.models import AbstractSCIMUserMixin


class User(AbstractSCIMUserMixin, AbstractUser):
    class Meta:
        # django-scim2 finds ``userName eq "x"`` by ``UPPER(username) = UPPER('x')`` (the
        # attribute is case-insensitive), which the unique index on ``username`` does not
        # serve: without this one every GET by filter reads the whole table, as a
        # deployment would not. Ours looks the name up in an index too.
        indexes = [models.Index(Upper("username"), name="scimpeer_user_username_upper")]

    @property
    def scim_groups(self) -> Any:
        return self.groups
