"""The user django-scim2 serves: Django's user with django-scim2's SCIM columns (id,
externalId, userName) and the groups its User adapter lists."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractUser
from django_scim.models import AbstractSCIMUserMixin


class User(AbstractSCIMUserMixin, AbstractUser):
    @property
    def scim_groups(self) -> Any:
        return self.groups
