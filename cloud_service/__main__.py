"""`python -m cloud_service serve ...`"""

from cloud_service.cli import main

raise SystemExit(main())
